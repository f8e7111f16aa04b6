from ecolink.accounts.scoping import current_organization, organizations_for_user


def organization(request):
    """The acting organization (for the balance badge) and the user's others (for the switcher)."""
    if not request.user.is_authenticated:
        return {}
    return {
        "current_org": current_organization(request),
        "user_orgs": organizations_for_user(request.user),
    }


# The main navigation. A section shows once its app is installed and routed.
NAV = [
    ("Datasets", "datasets:list"),
    ("Fine-tune", "finetune:list"),
    ("Models", "registry:list"),
    ("Billing", "billing:billing"),
    ("API keys", "apikeys:list"),
]


def navigation(request):
    from django.urls import NoReverseMatch, reverse

    items = []
    for label, name in NAV:
        try:
            url = reverse(name)
        except NoReverseMatch:
            continue
        items.append({"label": label, "url": url, "active": request.path.startswith(url)})
    return {"nav_items": items}
