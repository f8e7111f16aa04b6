from decimal import Decimal

from django import forms
from django.conf import settings

from ecolink.billing.models import MICROS_PER_CENT
from ecolink.billing.money import dollars


class TopupForm(forms.Form):
    """A card top-up: dollars and cents, within the configured limits."""

    amount_dollars = forms.DecimalField(
        label="Amount in dollars", max_digits=9, decimal_places=2, initial=Decimal("25")
    )
    nonce = forms.UUIDField(widget=forms.HiddenInput)

    def clean_amount_dollars(self) -> Decimal:
        amount: Decimal = self.cleaned_data["amount_dollars"]
        low, high = settings.TOPUP_MIN_CENTS, settings.TOPUP_MAX_CENTS
        if not low <= amount * 100 <= high:
            raise forms.ValidationError(
                f"Top up between {dollars(low * MICROS_PER_CENT)} "
                f"and {dollars(high * MICROS_PER_CENT)}."
            )
        return amount

    @property
    def amount_cents(self) -> int:
        return int(self.cleaned_data["amount_dollars"] * 100)
