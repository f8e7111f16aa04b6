"""What a minute of GPU time costs. The estimator prices with these functions and the meter
charges with them, so an estimate and a bill can never disagree on a rate."""

import math

from django.conf import settings


def minute_charge_micros(*, hourly_rate_micros: int, gpu_count: int) -> int:
    """One billing minute of `gpu_count` devices, rounded up to the micro-dollar."""
    return -(-hourly_rate_micros * gpu_count // 60)


def billed_minutes(seconds: float) -> int:
    """Minutes billed for a pod run of `seconds`: every started minute counts."""
    return max(1, math.ceil(seconds / settings.BILLING_MINUTE_SECONDS))


def run_cost_micros(*, seconds: float, hourly_rate_micros: int, gpu_count: int) -> int:
    return billed_minutes(seconds) * minute_charge_micros(
        hourly_rate_micros=hourly_rate_micros, gpu_count=gpu_count
    )
