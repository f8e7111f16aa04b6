from django.contrib.auth import views as auth_views
from django.urls import path

from ecolink.accounts import views

app_name = "accounts"
urlpatterns = [
    path("login/", auth_views.LoginView.as_view(template_name="accounts/login.html"), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("signup/", views.signup, name="signup"),
    path("switch/<int:org_id>/", views.switch_organization, name="switch"),
]
