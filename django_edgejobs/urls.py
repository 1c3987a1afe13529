"""Include in your URLconf: ``path("edgejobs/", include("django_edgejobs.urls"))``."""

from django.urls import path

from .views import complete_token_view

app_name = "django_edgejobs"

urlpatterns = [
    path("tokens/<str:signed>/complete/", complete_token_view, name="token-callback"),
]
