from django.urls import path

from ecolink.registry import views

app_name = "registry"
urlpatterns = [
    path("", views.model_list, name="list"),
    path("<int:pk>", views.model_detail, name="detail"),
    path("<int:pk>/deploy", views.deploy, name="deploy"),
    path("<int:pk>/undeploy", views.undeploy, name="undeploy"),
    path("<int:pk>/playground", views.playground, name="playground"),
    path("<int:pk>/download", views.download, name="download"),
    path("<int:pk>/delete", views.delete, name="delete"),
    path("<int:pk>/export", views.export_hub, name="export"),
    path("download/<str:token>", views.download_signed, name="download_signed"),
]
