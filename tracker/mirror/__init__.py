"""The Parquet mirror of the store's bulk tables: what a Dask cluster reads instead of the SQLite file.

- `layout`: where things are (tables, buckets by tracking-number hash, the manifest) and how one bucket of one
  table is read back, newest row per key; the only part workers of a cluster import.
- `export`: `tracker export-parquet DEST`, incremental from the store's change marks.

Orders, tracking events, shipments and shipment facts are bucketed by one hash of the tracking number, so a
number's orders, scans and facts share a bucket; messages by the same hash of their order id (they may arrive
before their order). Files are written by pyarrow's dataset writer, hive-partitioned (`bucket=N/`); the
manifest (`_tracker_mirror.json`, written last) names every file of the mirror, so a reader never sees an
export half done.
"""
