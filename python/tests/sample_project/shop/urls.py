from django.urls import include, path

# Django's own password reset views (and their email templates, from the admin app).
urlpatterns = [path("accounts/", include("django.contrib.auth.urls"))]
