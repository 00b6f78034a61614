"""The SQL source against the machine's PostgreSQL (127.0.0.1:5432, trust auth, user postgres).

Each test module run creates its own database ``amlops_sql_<uuid8>`` and drops it after.
Covers chunked streaming through a server-side cursor, typed rows, the dataset fingerprint,
incremental reads by watermark (with a task killed between landing and recording), and the
errors: bad SQL, a missing table, connection or column, a type mismatch, no secret in any of them.
"""

from __future__ import annotations

import json
import logging
import uuid
from types import SimpleNamespace

import pyarrow.parquet as pq
import pytest

from airflow_mlops import layout
from airflow_mlops.core.data.sql_source import read_to_parquet, stream_rows
from airflow_mlops.core.data.sql_watermark import SqlSourceError, last_watermark, state_uri
from airflow_mlops.core.data.stages import ingest_labeled
from airflow_mlops.core.errors import NothingToProcessError
from airflow_mlops.core.io import storage, tables
from airflow_mlops.spec import PipelineSpec, SpecError, parse_spec

pytestmark = pytest.mark.component

SERVER = "127.0.0.1:5432"
ROWS = 10_500
CHUNK = 1_000
TABLE = """
CREATE TABLE customers (
    row_id bigint PRIMARY KEY,
    customer_id text NOT NULL,
    tenure_months integer,
    monthly_charges numeric(8, 2),
    support_calls smallint,
    usage_gb double precision,
    plan text,
    region text,
    payment_method text,
    churned integer,
    active boolean,
    big_id bigint,
    updated_at timestamptz NOT NULL
)
"""
INSERT = """
INSERT INTO customers
SELECT g, 'c' || lpad(g::text, 6, '0'), g % 72, 20 + (g % 100) * 0.75, g % 7,
       CASE WHEN g % 10 = 0 THEN NULL ELSE (g % 500) / 10.0 END,
       (ARRAY['basic', 'standard', 'premium'])[1 + g % 3], (ARRAY['north', 'south', 'east', 'west'])[1 + g % 4],
       CASE WHEN g % 13 = 0 THEN NULL ELSE (ARRAY['card', 'bank_transfer', 'check'])[1 + g % 3] END,
       CASE WHEN g % 17 = 0 THEN NULL ELSE (g % 5 = 0)::int END,
       g % 2 = 0,
       CASE WHEN g % 11 = 0 THEN NULL ELSE 4611686018427387904 + g END,
       timestamptz '2026-01-01 00:00:00+00' + g * interval '1 minute'
FROM generate_series(CAST(:first AS integer), CAST(:last AS integer)) AS g
"""
QUERY = "SELECT * FROM customers ORDER BY row_id"


@pytest.fixture(scope="module")
def database():
    """A fresh database with the table of ROWS rows; its name; dropped after the module."""
    import sqlalchemy as sa

    name = f"amlops_sql_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(f"postgresql+psycopg://postgres@{SERVER}/postgres", isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
    engine = sa.create_engine(f"postgresql+psycopg://postgres@{SERVER}/{name}")
    try:
        with engine.begin() as connection:
            connection.exec_driver_sql(TABLE)
            connection.execute(sa.text(INSERT), {"first": 1, "last": ROWS})
        yield name
    finally:
        engine.dispose()
        with admin.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture
def engine(database):
    import sqlalchemy as sa

    engine = sa.create_engine(f"postgresql+psycopg://postgres@{SERVER}/{database}")
    yield engine
    engine.dispose()


@pytest.fixture
def scratch_table(engine):
    """A copy of the customers table that a test may change: its name."""
    name = f"t_{uuid.uuid4().hex[:8]}"
    with engine.begin() as connection:
        connection.exec_driver_sql(f"CREATE TABLE {name} AS SELECT * FROM customers")
    yield name
    with engine.begin() as connection:
        connection.exec_driver_sql(f"DROP TABLE {name}")


def sql_spec(spec: PipelineSpec, query: str = QUERY, chunk_rows: int = CHUNK, **sql) -> PipelineSpec:
    raw = spec.model_dump(mode="json")
    raw["data"]["dtypes"] = {**raw["data"]["dtypes"], **sql.pop("dtypes", {})}
    raw["data"]["source"] = {"chunk_rows": chunk_rows, "sql": {"conn_id": "warehouse", "query": query, **sql}}
    return PipelineSpec.model_validate(raw)


# -- the spec ------------------------------------------------------------------------------------


def _yaml(source: dict) -> str:
    from tests.conftest import EXAMPLE_SPEC

    raw = parse_spec(EXAMPLE_SPEC.read_text()).model_dump(mode="json")
    raw["data"]["source"] = source
    return json.dumps(raw)  # JSON is YAML


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ({"uri": "/data/x.csv", "sql": {"conn_id": "w", "query": "SELECT 1"}}, "give uri .* or sql .* not both"),
        ({"sql": {"conn_id": "w", "query": "SELECT 1; DROP TABLE customers"}}, "data.source.sql.query: .*2 statements"),
        ({"sql": {"conn_id": "w", "query": "DELETE FROM customers"}}, "must be a SELECT .* not DELETE"),
        ({"sql": {"conn_id": "w", "query": "  -- nothing\n"}}, "the query is empty"),
        ({"format": "csv", "sql": {"conn_id": "w", "query": "SELECT 1"}}, r"\['format'\] apply to files only"),
        ({"sql": {"conn_id": "", "query": "SELECT 1"}}, "data.source.sql.conn_id"),
        ({"sql": {"conn_id": "w", "query": "SELECT 1", "watermark": "x"}}, "data.source.sql.watermark: unknown"),
    ],
)
def test_the_spec_refuses_unusable_sql_sources_naming_the_field(source, message):
    with pytest.raises(SpecError, match=message):
        parse_spec(_yaml(source), "sql.yaml")


def test_one_select_with_semicolons_in_quotes_and_comments_is_accepted_without_its_trailing_semicolon():
    query = "WITH x AS (SELECT ';' AS a, $$;$$ AS b /* ; */) SELECT * FROM x; -- done; really"
    source = parse_spec(_yaml({"sql": {"conn_id": "w", "query": query}})).data.source
    assert source.sql is not None
    assert source.sql.query == "WITH x AS (SELECT ';' AS a, $$;$$ AS b /* ; */) SELECT * FROM x"


# -- reading -------------------------------------------------------------------------------------


def test_rows_stream_in_bounded_chunks_from_a_server_side_cursor(spec, engine, database):
    import sqlalchemy as sa

    source = sql_spec(spec).data.source.sql
    seen, statements = [], []
    for frame in stream_rows(engine, source, CHUNK):
        seen.append(len(frame))
        if len(seen) == 2:  # while the read is open, ask the server what the reading session runs
            with engine.connect() as other:
                statements = (
                    other.execute(
                        sa.text("SELECT query FROM pg_stat_activity WHERE datname = :db AND pid <> pg_backend_pid()"),
                        {"db": database},
                    )
                    .scalars()
                    .all()
                )
    assert seen == [CHUNK] * (ROWS // CHUNK) + [ROWS % CHUNK]
    assert any(s.lstrip().upper().startswith("FETCH FORWARD 1000") for s in statements), statements


def test_the_snapshot_keeps_types_nulls_and_exact_integers(spec, engine, tmp_path):
    target = str(tmp_path / "snapshot.parquet")
    read = read_to_parquet(sql_spec(spec), engine, target, None)
    assert (read.rows, read.chunks, read.uri) == (ROWS, 11, target)
    assert pq.ParquetFile(target).metadata.num_row_groups == 11
    frame = tables.read_table(target)
    assert frame["big_id"].dtype == "Int64" and frame["big_id"].isna().sum() == ROWS // 11
    assert int(frame.loc[0, "big_id"]) == 4611686018427387905  # beyond float64's 2**53: no detour through float
    assert frame["churned"].dtype == "Int64" and frame["churned"].isna().sum() == ROWS // 17
    assert frame["monthly_charges"].dtype == "float64" and frame.loc[0, "monthly_charges"] == 20.75
    assert str(frame["updated_at"].dtype).startswith("datetime64") and frame["active"].dtype == "boolean"
    assert frame["usage_gb"].isna().sum() == ROWS // 10 and frame["customer_id"].iloc[-1] == "c010500"


def test_a_column_null_in_the_first_chunks_gets_its_type_from_a_later_one(spec, engine, tmp_path, caplog):
    query = "SELECT *, CASE WHEN row_id > 2500 THEN row_id END AS late, CASE WHEN row_id > 9000 THEN 'x' END AS note "
    target = str(tmp_path / "snapshot.parquet")
    read = read_to_parquet(sql_spec(spec, query + "FROM customers ORDER BY row_id"), engine, target, None)
    schema = pq.read_schema(target)
    assert read.rows == ROWS and str(schema.field("late").type) == "int64"
    assert "string" in str(schema.field("note").type)
    frame = tables.read_table(target)
    assert frame["late"].isna().sum() == 2500 and int(frame["late"].max()) == ROWS
    assert (frame["note"] == "x").sum() == ROWS - 9000
    assert "no ORDER BY" not in caplog.text
    read_to_parquet(sql_spec(spec, "SELECT * FROM customers"), engine, target, None)
    assert "the query has no ORDER BY" in caplog.text


def test_colons_and_percent_signs_in_the_query_are_the_query_s_own(spec, engine):
    query = "SELECT 'a:b' AS x, '100%' AS y, '10:30'::time AS z WHERE 'x' LIKE '%'"
    (frame,) = stream_rows(engine, sql_spec(spec, query).data.source.sql, CHUNK)
    assert (frame.loc[0, "x"], frame.loc[0, "y"], str(frame.loc[0, "z"])) == ("a:b", "100%", "10:30:00")


def test_the_transaction_is_read_only(spec, engine, scratch_table):
    query = f"WITH gone AS (DELETE FROM {scratch_table} RETURNING *) SELECT * FROM gone"
    # refused by PostgreSQL twice over: in a server-side cursor, and in the read-only transaction
    with pytest.raises(SqlSourceError, match="DECLARE CURSOR must not contain data-modifying statements"):
        list(stream_rows(engine, sql_spec(spec, query).data.source.sql, CHUNK))
    with engine.connect() as connection:
        assert connection.exec_driver_sql(f"SELECT count(*) FROM {scratch_table}").scalar() == ROWS
    with engine.begin() as connection:
        connection.exec_driver_sql(f"CREATE SEQUENCE {scratch_table}_seq")
    query = f"SELECT nextval('{scratch_table}_seq') AS n"
    with pytest.raises(SqlSourceError, match=r"cannot execute nextval\(\) in a read-only transaction"):
        list(stream_rows(engine, sql_spec(spec, query).data.source.sql, CHUNK))


# -- the dataset and its fingerprint -------------------------------------------------------------


def test_unchanged_rows_give_the_same_fingerprint_and_a_changed_row_another(spec, engine, scratch_table, mlops_home):
    pipeline = sql_spec(spec, f"SELECT * FROM {scratch_table} ORDER BY row_id")
    first = ingest_labeled(pipeline, "r1", sql_engine=engine)
    second = ingest_labeled(pipeline, "r2", sql_engine=engine)
    assert first["rows"] == ROWS - ROWS // 17 and first["unlabeled_rows"] == ROWS // 17
    assert first["fingerprint"] == second["fingerprint"]
    assert first["sql"]["rows"] == ROWS and first["sql"]["chunks"] == 11 and "query" not in first["sql"]
    with engine.begin() as connection:
        connection.exec_driver_sql(f"UPDATE {scratch_table} SET monthly_charges = 99.99 WHERE row_id = 5000")
    third = ingest_labeled(pipeline, "r3", sql_engine=engine)
    assert third["fingerprint"] != first["fingerprint"] and third["rows"] == first["rows"]


# -- incremental ---------------------------------------------------------------------------------


def test_incremental_reads_only_new_rows_into_lake_batches(spec, engine, scratch_table, mlops_home):
    import sqlalchemy as sa

    pipeline = sql_spec(spec, f"SELECT * FROM {scratch_table}", watermark_column="updated_at")
    first = ingest_labeled(pipeline, "r1", sql_engine=engine)
    assert first["sql"]["rows"] == ROWS and first["sql"]["after"] is None
    assert first["sql"]["watermark"] == {"type": "datetime", "value": "2026-01-08T07:00:00+00:00"}
    with engine.begin() as connection:
        connection.execute(sa.text(INSERT.replace("customers", scratch_table)), {"first": ROWS + 1, "last": ROWS + 500})
    second = ingest_labeled(pipeline, "r2", sql_engine=engine)
    assert second["sql"]["rows"] == 500 and second["sql"]["after"] == first["sql"]["watermark"]
    batches = storage.list_files(layout.lake_dir(pipeline.name, "labeled"))
    assert len(batches) == 2 and second["sources"] == batches
    assert tables.read_table(batches[-1])["row_id"].tolist() == list(range(ROWS + 1, ROWS + 501))
    third = ingest_labeled(pipeline, "r3", sql_engine=engine)  # nothing new: the same window, the same data
    assert third["sql"]["rows"] == 0 and third["sql"]["landed"] is None
    assert third["fingerprint"] == second["fingerprint"]
    assert storage.list_files(layout.lake_dir(pipeline.name, "labeled")) == batches


def test_a_task_killed_between_landing_and_recording_reads_no_row_twice(spec, engine, scratch_table, mlops_home,
                                                                         monkeypatch):  # fmt: skip
    from airflow_mlops.core.data import sql_source

    pipeline = sql_spec(spec, f"SELECT * FROM {scratch_table}", watermark_column="row_id")

    def killed(*args):
        raise KeyboardInterrupt("killed")

    save_watermark = sql_source.save_watermark
    monkeypatch.setattr(sql_source, "save_watermark", killed)
    with pytest.raises(KeyboardInterrupt):
        ingest_labeled(pipeline, "r1", sql_engine=engine)
    assert not storage.exists(state_uri(pipeline.name))
    assert last_watermark(pipeline) == {"type": "int", "value": ROWS}  # from the landed batch itself
    # Only this patch goes: monkeypatch.undo() would also point the roots back outside tmp_path.
    monkeypatch.setattr(sql_source, "save_watermark", save_watermark)
    retry = ingest_labeled(pipeline, "r1", sql_engine=engine)
    assert retry["sql"]["rows"] == 0 and len(retry["sources"]) == 1
    assert storage.read_json(state_uri(pipeline.name))["watermark"] == {"type": "int", "value": ROWS}


def test_another_watermark_column_is_refused_until_the_state_is_deleted(spec, engine, mlops_home):
    ingest_labeled(sql_spec(spec, QUERY, watermark_column="row_id"), "r1", sql_engine=engine)
    other = sql_spec(spec, QUERY, watermark_column="updated_at")
    with pytest.raises(SqlSourceError, match="was written for watermark column 'row_id', not 'updated_at'; delete it"):
        ingest_labeled(other, "r2", sql_engine=engine)


def test_incremental_with_no_rows_yet_is_nothing_to_process(spec, engine, mlops_home):
    pipeline = sql_spec(spec, "SELECT * FROM customers WHERE row_id < 0", watermark_column="row_id")
    with pytest.raises(NothingToProcessError, match="no rows with a row_id above None"):
        ingest_labeled(pipeline, "r1", sql_engine=engine)


# -- errors --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "sql", "message"),
    [
        ("SELECT * FROM customers WHERE", {}, r"connection 'warehouse'\): the query failed: syntax error"),
        ("SELECT * FROM no_such_table", {}, 'the query failed: relation "no_such_table" does not exist'),
        (QUERY, {"watermark_column": "nope"}, r"column \"nope\" does not exist.*watermark_column 'nope' must be"),
        ("SELECT * FROM customers WHERE false", {}, "the query returned no rows"),
        ("SELECT row_id, churned FROM customers", {}, r"missing required column\(s\) \['customer_id'"),
        ("SELECT *, plan AS pick FROM customers", {"dtypes": {"pick": "float"}},
         r"column 'pick' is declared float but has non-numeric values \['standard'"),
        ("SELECT *, updated_at AS seen FROM customers", {"dtypes": {"seen": "int"}},
         "column 'seen' is declared int but the database returns datetime64"),
        ("SELECT *, active AS flag FROM customers", {"dtypes": {"flag": "float"}},
         "column 'flag' is declared float but the database returns booleans"),
        ("SELECT *, 1 AS plan FROM customers", {}, r"returns column\(s\) \['plan'\] more than once"),
    ],
)  # fmt: skip
def test_unreadable_sources_fail_naming_the_source_and_write_nothing(spec, engine, mlops_home, query, sql, message):
    pipeline = sql_spec(spec, query, **sql)
    with pytest.raises(SqlSourceError, match=message) as caught:
        ingest_labeled(pipeline, "r1", sql_engine=engine)
    assert str(caught.value).startswith("SQL source (connection 'warehouse'): ")
    assert not storage.exists(layout.join(layout.run_dir(pipeline.name, "r1", "ingest"), "dataset.parquet"))
    assert not storage.exists(layout.join(layout.run_dir(pipeline.name, "r1", "ingest"), "sql_snapshot.parquet"))
    assert storage.list_files(layout.lake_dir(pipeline.name, "labeled")) == []


def test_a_failure_after_the_read_names_the_sql_source(spec, engine, mlops_home):
    pipeline = sql_spec(spec, "SELECT *, NULL::float AS usage_gb2 FROM customers ORDER BY row_id")
    raw = pipeline.model_dump(mode="json")
    raw["data"]["features"]["numeric"].append("usage_gb2")
    with pytest.raises(Exception, match=r"SQL source \(connection 'warehouse'\) read into .*sql_snapshot.parquet: "
                                        r"feature column\(s\) \['usage_gb2'\] are entirely empty"):  # fmt: skip
        ingest_labeled(PipelineSpec.model_validate(raw), "r1", sql_engine=engine)


# -- through the operator and an Airflow connection ----------------------------------------------


def _context(op):
    return {"run_id": "manual__1", "ds": "2026-01-01", "dag": SimpleNamespace(dag_id="churn_training"), "task": op}


def _spec_file(tmp_path, pipeline: PipelineSpec) -> str:
    path = tmp_path / "sql.yaml"
    path.write_text(json.dumps(pipeline.model_dump(mode="json")))
    return str(path)


def test_the_operator_reads_through_an_airflow_connection_from_the_environment(
    spec, database, mlops_home, tmp_path, monkeypatch
):
    from airflow_mlops.operators.data import IngestLabeledDataOperator

    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", f"postgresql://postgres@{SERVER}/{database}")
    op = IngestLabeledDataOperator(task_id="ingest", spec_path=_spec_file(tmp_path, sql_spec(spec)))
    result = op.execute(_context(op))
    assert result["rows"] == ROWS - ROWS // 17 and result["sql"]["conn_id"] == "warehouse"
    assert storage.exists(result["uri"])


@pytest.mark.parametrize(
    ("uri", "query", "message"),
    [
        (None, QUERY, r"Airflow connection 'warehouse' \(data.source.sql.conn_id\) does not exist; create it: "
                      r"airflow connections add warehouse --conn-uri"),
        ("postgresql://postgres:s3cr3t-pw@{server}/amlops_sql_does_not_exist", QUERY,
         r"SQL source \(connection 'warehouse'\): the query failed: .*database \"amlops_sql_does_not_exist\""),
        ("postgresql://postgres:s3cr3t-pw@{server}/{db}", "SELECT * FROM no_such_table",
         r"SQL source \(connection 'warehouse'\): the query failed: relation \"no_such_table\""),
        ("http://user:s3cr3t-pw@example.invalid", QUERY, r"is of type 'http', not a SQL database"),
    ],
)  # fmt: skip
def test_connection_problems_are_named_and_no_secret_is_shown(spec, database, mlops_home, tmp_path, monkeypatch,
                                                               caplog, uri, query, message):  # fmt: skip
    from airflow_mlops.operators.data import IngestLabeledDataOperator

    if uri is None:
        monkeypatch.delenv("AIRFLOW_CONN_WAREHOUSE", raising=False)
    else:
        monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", uri.format(server=SERVER, db=database))
    op = IngestLabeledDataOperator(task_id="ingest", spec_path=_spec_file(tmp_path, sql_spec(spec, query)))
    with caplog.at_level(logging.DEBUG), pytest.raises(Exception, match=message) as caught:
        op.execute(_context(op))
    assert "s3cr3t-pw" not in str(caught.value) and "s3cr3t-pw" not in repr(caught.value)
    assert "s3cr3t-pw" not in caplog.text  # nor any log line of the attempt (DEBUG)
