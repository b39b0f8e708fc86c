"""Stock levels per item."""


class Stock:
    def __init__(self):
        self.levels = {}

    def add(self, item, count):
        if count <= 0:
            raise ValueError("count must be positive")
        self.levels[item] = self.levels.get(item, 0) + count

    def remove(self, item, count):
        have = self.levels.get(item, 0)
        if count > have:
            raise ValueError("not enough %s: have %d, want %d" % (item, have, count))
        self.levels[item] = have - count

    def level(self, item):
        return self.levels.get(item, 0)
