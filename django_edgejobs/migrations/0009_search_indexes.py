"""The admin's error search: a trigram index on PostgreSQL (``store/search.py``). Not atomic:
the index is built CONCURRENTLY, so a large jobs table keeps taking writes."""

from django.db import migrations


def forwards(apps, schema_editor):
    from django_edgejobs.store.search import create_indexes

    create_indexes(schema_editor)


def backwards(apps, schema_editor):
    from django_edgejobs.store.search import drop_indexes

    drop_indexes(schema_editor)


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("django_edgejobs", "0008_flow_limits"),
    ]

    operations = [
        migrations.RunPython(forwards, backwards, elidable=False),
    ]
