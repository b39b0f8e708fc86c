import unittest

from inventory.stock import Stock


class StockTest(unittest.TestCase):
    def test_add_and_remove(self):
        stock = Stock()
        stock.add("bolt", 5)
        stock.remove("bolt", 2)
        self.assertEqual(stock.level("bolt"), 3)

    def test_cannot_remove_more_than_held(self):
        stock = Stock()
        with self.assertRaisesRegex(ValueError, "not enough nut: have 0, want 1"):
            stock.remove("nut", 1)

    def test_count_must_be_positive(self):
        with self.assertRaisesRegex(ValueError, "count must be positive, not 0"):
            Stock().add("gear", 0)

    def test_low_stock(self):
        stock = Stock({"bolt": 50, "nut": 2, "gear": 1})
        self.assertEqual(stock.low(), ["gear", "nut"])


if __name__ == "__main__":
    unittest.main()
