from django.contrib.auth.decorators import login_required
from django.db import connection
from django.http import JsonResponse
from django.shortcuts import render

from ecolink.accounts.scoping import current_organization


@login_required
def home(request):
    return render(request, "home.html", {"org": current_organization(request)})


def healthz(request):
    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
    return JsonResponse({"ok": True})
