// The overview: one row per pipeline, each cell a link to where the detail is.
import { useEffect, useState } from "preact/hooks";
import { airflowBase, getJson, Json } from "./api";
import { fmt } from "./charts";

export function RunCell(props: { root: string; dag: string; run: Json }) {
  const { run } = props;
  if (!run) return <span class="muted">no run yet</span>;
  const href = `${airflowBase(props.root)}/dags/${encodeURIComponent(props.dag)}/runs/${encodeURIComponent(run.run_id)}`;
  return (
    <a href={href} target="_top" title={run.note || run.run_id}>
      <span class={`state state-${run.state}`}>{run.state}</span> {when(run.end || run.start || run.run_after)}
      {run.note ? <div class="note">{run.note}</div> : null}
    </a>
  );
}

export function when(iso: string | null | undefined): string {
  if (!iso) return "";
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toISOString().slice(0, 16).replace("T", " ") + " UTC";
}

export function ChampionText(props: { champion: Json }) {
  const c = props.champion;
  if (!c) return <span class="muted">no champion</span>;
  const verdict = c.meets_threshold === null ? "" : c.meets_threshold ? "meets" : "below";
  return (
    <span>
      <b>v{c.version}</b> since {when(c.since) || "?"}
      <div>
        {c.metric} {fmt(c.value)}
        {c.threshold !== null ? <span class={`verdict ${verdict}`}> ({verdict} threshold {fmt(c.threshold)})</span> : null}
      </div>
      {c.alias_mismatch ? <div class="warn">{c.alias_mismatch.detail}</div> : null}
    </span>
  );
}

// Open health incidents of the monitoring DAG (silence, label lag, champion age, a late run): what, since when.
export function OpenIncidents(props: { incidents: Json }) {
  const found = props.incidents;
  if (!found || found.error) return found && found.error ? <div class="error">incidents: {found.error}</div> : null;
  return (
    <>
      {found.open.map((i: Json) => (
        <div class="warn incident" data-incident={i.check} title={i.summary}>
          {i.check.replace("_", " ")} since {when(i.opened_at)}
          <div class="small">{i.summary}</div>
        </div>
      ))}
    </>
  );
}

export function Overview(props: { root: string }) {
  const [data, setData] = useState<Json>(null);
  const [error, setError] = useState<string>("");
  useEffect(() => {
    getJson(`${props.root}/api/overview`).then(setData, (e) => setError(String(e.message || e)));
  }, []);
  if (error) return <p class="error">cannot load the overview: {error}</p>;
  if (!data) return <p>loading…</p>;
  const base = airflowBase(props.root);
  return (
    <main>
      <h1>MLOps pipelines</h1>
      <p class="muted">signed in as {data.user}</p>
      {data.pipelines.length && data.pipelines[0].airflow_error ? <p class="error">cannot read Airflow's runs and approvals: {data.pipelines[0].airflow_error}</p> : null}
      <table class="grid overview">
        <thead>
          <tr>
            <th>pipeline</th><th>champion</th><th>training</th><th>scoring</th><th>monitoring</th>
            <th>drift / decay</th><th>approvals</th><th>alerts</th><th>landing</th>
          </tr>
        </thead>
        <tbody>
          {data.pipelines.map((p: Json) => {
            const reg = p.registry || {};
            return (
              <tr data-pipeline={p.name}>
                <td><a href={`${base}/dags/${encodeURIComponent(p.dags.training)}/plugin/mlops-model`} target="_top"><b>{p.name}</b></a><div class="muted">{p.model}</div></td>
                <td>{reg.error ? <span class="error">cannot ask MLflow: {reg.error}</span> : <ChampionText champion={reg.champion} />}</td>
                {["training", "scoring", "monitoring"].map((kind) => (
                  <td><RunCell root={props.root} dag={p.dags[kind]} run={p.runs[kind]} /></td>
                ))}
                <td>
                  {reg.drift ? <div class={reg.drift.drifted ? "warn" : ""}>{reg.drift.drifted ? `drift: ${reg.drift.features} feature(s)` : "no drift"}</div> : <span class="muted">not monitored yet</span>}
                  {reg.decay && reg.decay.labeled !== null ? <div class={reg.decay.decayed ? "warn" : ""}>{reg.decay.decayed ? "decayed" : "no decay"}: {reg.decay.metric} {fmt(reg.decay.labeled)}</div> : null}
                </td>
                <td>
                  {p.approvals_open ? <a class="warn" href={`${base}/required_actions`} target="_top">{p.approvals_open} waiting</a> : <span class="muted">none</span>}
                </td>
                <td>
                  {reg.alert ? <div class="warn">{reg.alert.reasons.join(" + ")} since {when(reg.alert.at)}</div> : null}
                  <OpenIncidents incidents={p.incidents} />
                  {!reg.alert && !(p.incidents && p.incidents.open && p.incidents.open.length) ? <span class="muted">none</span> : null}
                </td>
                <td class="small">
                  {p.inboxes ? Object.entries(p.inboxes).map(([k, v]) => <div>{k}: <code>{String(v)}</code></div>) : null}
                  {p.claims ? Object.entries(p.claims).map(([k, v]: [string, Json]) => (
                    <div>{v.error ? <span class="error">{k}: {v.error}</span> : `${k}: ${v.open} open, ${v.stranded.length} stranded`}</div>
                  )) : null}
                </td>
              </tr>
            );
          })}
        </tbody>
      </table>
      {data.spec_errors.length ? (
        <section>
          <h2>Specs that do not load</h2>
          {data.spec_errors.map((e: Json) => <div><code>{e.spec}</code><pre>{e.error}</pre></div>)}
        </section>
      ) : null}
    </main>
  );
}
