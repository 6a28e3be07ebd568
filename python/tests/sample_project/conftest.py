import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")
django.setup()

from django.core.management import call_command  # noqa: E402

call_command("migrate", verbosity=0, skip_checks=True)
