from django.urls import path

from ecolink.ops import views

app_name = "ops"
urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("throughput/", views.throughput_list, name="throughput"),
    path(
        "throughput/<slug:gpu_slug>/<str:method>/",
        views.throughput_review,
        name="throughput_review",
    ),
]
