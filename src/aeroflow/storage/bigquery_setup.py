"""Create aeroflow's dataset and tables in BigQuery from ``domain.schema``.

For tests, the emulator and local experiments only. In production Terraform owns the dataset
and tables (from the same schema, via the generated JSON files), and the service accounts that
run aeroflow get data rights, not the right to create or alter tables; so the adapter never
calls this itself.
"""

from __future__ import annotations

from google.cloud import bigquery

from aeroflow.domain.schema import TABLES, Table


def bigquery_table(table: Table, *, project: str, dataset: str) -> bigquery.Table:
    """The table as Terraform declares it: schema, DAY partitioning, clustering."""
    result = bigquery.Table(
        f"{project}.{dataset}.{table.name}",
        schema=[bigquery.SchemaField.from_api_repr(f) for f in table.bigquery_schema()],
    )
    result.description = table.description
    if table.partition_by is not None:
        result.time_partitioning = bigquery.TimePartitioning(
            type_=bigquery.TimePartitioningType.DAY, field=table.partition_by
        )
    if table.cluster_by:
        result.clustering_fields = list(table.cluster_by)
    return result


def create_dataset_and_tables(
    client: bigquery.Client, *, dataset: str, location: str, project: str | None = None
) -> None:
    """Create the dataset and every table of ``domain.schema``; existing ones are kept."""
    project = project or client.project
    ds = bigquery.Dataset(f"{project}.{dataset}")
    ds.location = location
    client.create_dataset(ds, exists_ok=True)
    for table in TABLES:
        client.create_table(bigquery_table(table, project=project, dataset=dataset), exists_ok=True)
