"""`X-Query-Count` on every response: how many SQL statements the request ran.

On only when ECOLINK_QUERY_COUNT is set, for `make bench-web`, which reads it from a real
gunicorn server to report queries per request."""

from django.db import connection


class QueryCountMiddleware:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        count = 0

        def counted(execute, sql, params, many, context):
            nonlocal count
            count += 1
            return execute(sql, params, many, context)

        with connection.execute_wrapper(counted):
            response = self.get_response(request)
        response["X-Query-Count"] = str(count)
        return response
