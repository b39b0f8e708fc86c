"""A tiny stock-keeping service."""
# TODO: keep stock levels in a database
