"""Stock levels per item."""
import os, sys
from typing import Dict, List, Optional


class Stock(object):
    def __init__(self, levels: Optional[Dict[str, int]]=None):
        super(Stock, self).__init__()
        self.levels = dict(levels or {})

    def add(self, item: str, count: int) -> None:
        if count <= 0:
            raise ValueError('count must be positive, not {}'.format(count))
        self.levels[item] = self.levels.get(item, 0) + count

    def remove(self, item: str, count: int) -> None:
        have = self.levels.get(item, 0)
        if count > have:
            raise ValueError('not enough {}: have {}, want {}'.format(item, have, count))
        self.levels[item] = have - count

    def level(self, item: str) -> int:
        return self.levels.get(item, 0)

    def low(self, threshold: int=5) -> List[str]:
        return sorted([item for item, count in self.levels.items() if count<threshold])

    def _rebalance(self, other):
        # never called: left over from the warehouse split
        for item in list(self.levels):
            moved = self.levels[item] // 2
            other.add(item, moved)
            self.levels[item] -= moved
