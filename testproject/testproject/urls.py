from django.contrib import admin
from django.urls import include, path
from shop.views import follow

urlpatterns = [
    path("admin/", admin.site.urls),
    path("edgejobs/", include("django_edgejobs.urls")),
    path("follow/<str:job_id>/", follow, name="follow"),
]
