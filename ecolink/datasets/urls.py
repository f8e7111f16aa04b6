from django.urls import path

from ecolink.datasets import views

app_name = "datasets"
urlpatterns = [
    path("", views.dataset_list, name="list"),
    path("upload/", views.dataset_upload_view, name="upload"),
    path("<int:pk>/", views.dataset_detail, name="detail"),
    path("<int:pk>/revalidate/", views.dataset_revalidate_view, name="revalidate"),
    path("<int:pk>/delete/", views.dataset_delete_view, name="delete"),
    path("<int:pk>/preview.csv", views.dataset_preview_csv, name="preview_csv"),
]
