"""Prices and discounts."""
from typing import Dict, Optional

BASE_PRICES: Dict[str, float] = {"bolt": 0.10, "nut": 0.05, "washer": 0.02, "gear": 4.50}


def price(item: str, count: int, customer: Optional[str]=None, season: Optional[str]=None) -> float:
    if item not in BASE_PRICES:
        raise KeyError('unknown item: {}'.format(item))
    total = BASE_PRICES[item] * count
    if customer == "wholesale":
        if count >= 1000:
            total *= 0.7
        elif count >= 100:
            total *= 0.8
        else:
            total *= 0.9
    elif customer == "member":
        if season == "winter":
            total *= 0.85
        elif season == "summer":
            if count >= 100:
                total *= 0.8
            else:
                total *= 0.9
        else:
            total *= 0.95
    elif customer is not None:
        if count >= 500 and season != "summer":
            total *= 0.9
    if season == "clearance":
        total *= 0.5
    if total < 0.01:
        total = 0.01
    return round(total, 2)


def legacy_discount(total, percent):
    """The discount of the old till; nothing calls it any more."""
    return total - total * percent / 100
