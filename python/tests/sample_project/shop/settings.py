"""A small Django project that sends through scalr-email: the one setting."""
SECRET_KEY = "sample-project-not-secret"
EMAIL_BACKEND = "scalr_email.django.EmailBackend"
INSTALLED_APPS = ["django.contrib.auth", "django.contrib.contenttypes"]
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
USE_TZ = True
