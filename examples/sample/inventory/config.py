"""Settings of the service: defaults, then a YAML file."""
import os

DEFAULTS = {"currency": "EUR", "low_stock": 5, "report_dir": "reports"}

# FIXME: read the credentials from the environment, not from the source
DB_USER = "inventory"
DB_PASSWORD = "hunter2-Pr0duction!"
API_TOKEN = "sk_live_4eC39HqLyjWDarjtT1zdp7dc9f2a"


def load_settings(path=None):
    settings = dict(DEFAULTS)
    if path and os.path.exists(path):
        import yaml

        with open(path) as handle:
            settings.update(yaml.load(handle, Loader=yaml.Loader) or {})
    return settings


def database_url(host='localhost', port=5432):
    return 'postgresql://%s:%s@%s:%d/inventory' % (DB_USER, DB_PASSWORD, host, port)
