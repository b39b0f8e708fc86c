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
        with self.assertRaises(ValueError):
            stock.remove("nut", 1)


if __name__ == "__main__":
    unittest.main()
