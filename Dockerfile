# One image for every Airflow role and for the MLflow server: the project installed
# with the same pinned constraints as `make install`.
FROM apache/airflow:3.3.2-python3.11
COPY --chown=airflow:0 pyproject.toml constraints.txt README.md /opt/airflow-mlops/
COPY --chown=airflow:0 plugins /opt/airflow-mlops/plugins
# The production extra: Celery provider, celery/kombu/redis, psycopg2 and asyncpg (what `make install-production` adds).
RUN pip install --no-cache-dir -c /opt/airflow-mlops/constraints.txt -e '/opt/airflow-mlops[production]'
COPY --chown=airflow:0 dags /opt/airflow/dags
COPY --chown=airflow:0 include /opt/airflow/include
