"""Forms of the operator actions: every one asks for a reason."""

from decimal import Decimal

from django import forms

from ecolink.billing.models import MICROS_PER_DOLLAR
from ecolink.ops.services import MAX_RETENTION_DAYS


class ReasonForm(forms.Form):
    reason = forms.CharField(
        widget=forms.Textarea(attrs={"rows": 3, "cols": 60}),
        help_text="Recorded in the audit log with your name.",
    )


class RetentionForm(ReasonForm):
    days = forms.IntegerField(min_value=1, max_value=MAX_RETENTION_DAYS, initial=30)


class AdjustmentForm(ReasonForm):
    direction = forms.ChoiceField(
        choices=[("credit", "Credit (add to the balance)"), ("debit", "Debit (take from it)")],
        widget=forms.RadioSelect,
    )
    amount = forms.DecimalField(
        label="Amount (USD)",
        min_value=Decimal("0.000001"),
        max_digits=12,
        decimal_places=6,
        help_text="Up to six decimals: the ledger counts micro-dollars.",
    )

    @property
    def amount_micros(self) -> int:
        micros = int(self.cleaned_data["amount"] * MICROS_PER_DOLLAR)
        return micros if self.cleaned_data["direction"] == "credit" else -micros


class EfficiencyForm(ReasonForm):
    efficiency = forms.FloatField(
        min_value=0.0001, max_value=1.0, help_text="Share of the GPU's peak bf16 TFLOP/s."
    )
