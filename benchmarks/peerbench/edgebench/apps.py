from django.apps import AppConfig


class EdgeBenchConfig(AppConfig):
    name = "edgebench"
    verbose_name = "peer benchmark jobs"
