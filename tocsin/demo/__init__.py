"""The demos: a simulated plant, a payment switch and an imaging feed, end to end."""
