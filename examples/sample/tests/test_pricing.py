import unittest

from inventory.config import database_url, load_settings
from inventory.pricing import price
from inventory.report import summary
from inventory.stock import Stock


class PricingTest(unittest.TestCase):
    def test_plain_price(self):
        self.assertEqual(price("gear", 2), 9.0)

    def test_wholesale_discounts(self):
        self.assertEqual(price("bolt", 1000, "wholesale"), 70.0)
        self.assertEqual(price("bolt", 100, "wholesale"), 8.0)

    def test_member_in_summer(self):
        self.assertEqual(price("nut", 100, "member", "summer"), 4.0)

    def test_never_free(self):
        self.assertEqual(price("washer", 0), 0.01)

    def test_unknown_item(self):
        with self.assertRaises(KeyError):
            price("sprocket", 1)


class ReportTest(unittest.TestCase):
    def test_summary_lists_low_items(self):
        text = summary(Stock({"bolt": 50, "nut": 2}))
        self.assertIn("low: nut", text)

    def test_settings_and_url(self):
        self.assertEqual(load_settings()["currency"], "EUR")
        self.assertIn("@db:5432/", database_url("db"))


if __name__ == "__main__":
    unittest.main()
