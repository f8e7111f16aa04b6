from django import template

from ecolink.billing import money

register = template.Library()
register.filter("dollars", money.dollars)
register.filter("dollars_precise", money.dollars_precise)
