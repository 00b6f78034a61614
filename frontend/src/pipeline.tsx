// One pipeline's model page: what serves and why, its history, its health, its data, and the actions.
import { useEffect, useState } from "preact/hooks";
import { airflowBase, answerApproval, getJson, Json, rollback, triggerRetrain } from "./api";
import { Bars, fmt, Heatmap, LineChart } from "./charts";
import { ChampionText, OpenIncidents, RunCell, when } from "./overview";

function Section(props: { title: string; id: string; children: Json }) {
  return (
    <section id={props.id}>
      <h2>{props.title}</h2>
      {props.children}
    </section>
  );
}

function Failed(props: { part: Json; what: string }) {
  return props.part && props.part.error ? <p class="error">cannot read {props.what}: {props.part.error}</p> : null;
}

function Actions(props: { root: string; page: Json; reload: () => void }) {
  const { page, root } = props;
  const [reason, setReason] = useState("");
  const [force, setForce] = useState(true);
  const [target, setTarget] = useState("");
  const [why, setWhy] = useState("");
  const [message, setMessage] = useState<{ ok: boolean; text: string } | null>(null);
  const [busy, setBusy] = useState(false);
  const perms = page.permissions || {};
  const versions: Json[] = (page.registry.timeline && page.registry.timeline.versions) || [];
  const champion = page.registry.champion && page.registry.champion.version;
  const candidates = versions.filter((v) => v.version !== champion).reverse();
  const act = (work: () => Promise<Json>, done: (r: Json) => string) => {
    setBusy(true);
    setMessage({ ok: true, text: "working…" });
    work()
      .then(
        (r) => {
          setMessage({ ok: true, text: done(r) });
          props.reload();
        },
        (e) => setMessage({ ok: false, text: String(e.message || e) }),
      )
      .finally(() => setBusy(false));
  };
  return (
    <div class="actions">
      <form
        class="action"
        onSubmit={(e) => {
          e.preventDefault();
          act(() => triggerRetrain(root, page.dags.training, reason, force), (r) => `retraining queued: ${r.dag_run_id}`);
        }}
      >
        <h3>Retrain now</h3>
        <label>reason <input name="reason" value={reason} onInput={(e) => setReason((e.target as HTMLInputElement).value)} placeholder="why (recorded on the run)" /></label>
        <label><input type="checkbox" name="force_retrain" checked={force} onChange={(e) => setForce((e.target as HTMLInputElement).checked)} /> force_retrain (train even on data already trained on)</label>
        <button type="submit" disabled={busy || !perms.retrain} title={perms.retrain ? "" : "you may not trigger this DAG"}>Retrain</button>
      </form>
      <form
        class="action"
        onSubmit={(e) => {
          e.preventDefault();
          if (!target) return;
          act(() => rollback(root, page.name, target, why), (r) => `champion moved v${r.from_version ?? "-"} -> v${r.to_version} by ${r.by}${r.asset_event ? ` (${r.asset_event})` : ""}`);
        }}
      >
        <h3>Roll back</h3>
        <label>
          to version{" "}
          <select name="to_version" value={target} onChange={(e) => setTarget((e.target as HTMLSelectElement).value)}>
            <option value="">choose…</option>
            {candidates.map((v) => (
              <option value={v.version} disabled={!v.servable}>
                v{v.version} {v.metrics[page.registry.timeline.metric] !== undefined ? `${page.registry.timeline.metric} ${fmt(v.metrics[page.registry.timeline.metric])}` : ""}{v.servable ? "" : " (not servable)"}
              </option>
            ))}
          </select>
        </label>
        <label>reason <input name="rollback_reason" value={why} onInput={(e) => setWhy((e.target as HTMLInputElement).value)} placeholder="recorded in the history" /></label>
        <button type="submit" disabled={busy || !perms.rollback || !target} title={perms.rollback ? "" : "moving the champion needs edit rights on the training DAG"}>Roll back</button>
      </form>
      {message ? <p class={message.ok ? "ok" : "error"} role="status">{message.text}</p> : null}
    </div>
  );
}

function Approvals(props: { root: string; page: Json; reload: () => void }) {
  const { page } = props;
  const [comments, setComments] = useState<Record<string, string>>({});
  const [message, setMessage] = useState<{ ok: boolean; text: string } | null>(null);
  if (!Array.isArray(page.approvals)) return <Failed part={page.approvals} what="the open approvals" />;
  if (!page.approvals.length) return <p class="muted">nothing waits for a decision</p>;
  const may = page.permissions && page.permissions.approve;
  return (
    <div>
      {page.approvals.map((a: Json) => {
        const key = `${a.run_id}/${a.task_id}`;
        const answer = (option: string) =>
          answerApproval(props.root, a, option, comments[key] || "").then(
            (r) => {
              setMessage({ ok: true, text: `${option} recorded for ${a.run_id} by ${r.responded_by?.name ?? r.responded_by?.id ?? "you"}` });
              props.reload();
            },
            (e) => setMessage({ ok: false, text: String(e.message || e) }),
          );
        return (
          <div class="approval" data-run={a.run_id}>
            <h3>{a.subject}</h3>
            <div class="muted">asked {when(a.created)} in <a href={`${airflowBase(props.root)}/dags/${a.dag_id}/runs/${encodeURIComponent(a.run_id)}`} target="_top">{a.run_id}</a></div>
            <pre class="evidence">{a.body}</pre>
            <label>comment <input name="comment" value={comments[key] || ""} onInput={(e) => setComments({ ...comments, [key]: (e.target as HTMLInputElement).value })} /></label>
            {a.options.map((option: string) => (
              <button disabled={!may} onClick={() => answer(option)} title={may ? "" : "you may not answer this DAG's approvals"}>{option}</button>
            ))}
          </div>
        );
      })}
      {message ? <p class={message.ok ? "ok" : "error"} role="status">{message.text}</p> : null}
    </div>
  );
}

function Timeline(props: { page: Json }) {
  const reg = props.page.registry;
  if (reg.error) return <Failed part={reg} what="the registry" />;
  const t = reg.timeline;
  const champion = reg.champion && reg.champion.version;
  const metrics: string[] = Array.from(new Set<string>(t.versions.flatMap((v: Json) => Object.keys(v.metrics))));
  return (
    <div>
      <LineChart
        title={`${t.metric} of each version on its test split`}
        threshold={t.threshold}
        series={[{ name: t.metric, points: t.versions.map((v: Json) => ({ label: `v${v.version}`, value: v.metrics[t.metric] ?? null, mark: v.version === champion })) }]}
      />
      <h3>Moves of the champion</h3>
      {t.moves.length ? (
        <table class="grid moves">
          <thead><tr><th>when</th><th>kind</th><th>from</th><th>to</th><th>by</th><th>run</th><th>why</th></tr></thead>
          <tbody>
            {t.moves.map((m: Json) => (
              <tr>
                <td>{when(m.at)}</td>
                <td><span class={`kind kind-${m.kind}`}>{m.kind}{m.forced ? " (forced)" : ""}</span></td>
                <td>{m.from_version ? `v${m.from_version}` : "-"}</td>
                <td><a href={reg.links.versions[m.to_version]} target="_blank" rel="noopener">v{m.to_version}</a></td>
                <td>{m.by}</td>
                <td class="small">{m.run || ""}</td>
                <td>{m.reason}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : <p class="muted">no move recorded yet</p>}
      <h3>Versions</h3>
      <table class="grid versions">
        <thead><tr><th>version</th><th>registered</th>{metrics.map((m) => <th>{m}</th>)}<th>gate</th><th>ONNX</th><th>decision</th></tr></thead>
        <tbody>
          {[...t.versions].reverse().map((v: Json) => (
            <tr class={v.version === champion ? "champion" : ""}>
              <td><a href={reg.links.versions[v.version]} target="_blank" rel="noopener">v{v.version}</a>{v.version === champion ? " ★" : ""}</td>
              <td>{when(new Date(v.created).toISOString())}</td>
              {metrics.map((m) => <td class="num">{fmt(v.metrics[m])}</td>)}
              <td class={v.gate === "passed" ? "ok" : "warn"}>{v.gate || "-"}{v.gate !== "passed" && v.gate_reasons ? <div class="small">{v.gate_reasons}</div> : null}</td>
              <td>{v.onnx_parity || "-"}</td>
              <td>
                {v.approval ? <div>{v.approval.decision} by {v.approval.by}{v.approval.comment ? `: ${v.approval.comment}` : ""}</div> : null}
                {v.promoted ? "promoted" : v.gate === "passed" && !v.approval ? "not promoted" : ""}
              </td>
            </tr>
          ))}
        </tbody>
      </table>
    </div>
  );
}

function Card(props: { root: string; page: Json }) {
  const reg = props.page.registry;
  const card = reg.card;
  if (!card) return <p class="muted">no champion yet</p>;
  const importance: [string, number][] = Array.isArray(card.importance)
    ? card.importance.map((r: Json) => [r.feature, r.importance ?? r.mean ?? 0])
    : Object.entries(card.importance).map(([k, v]: [string, Json]) => [k, typeof v === "number" ? v : v?.mean ?? 0]);
  const top = Math.max(1e-9, ...importance.map(([, v]) => Math.abs(v)));
  return (
    <div class="card">
      <p>
        <b>v{card.version}</b>: {card.estimator || "?"} ({card.winner_trial}) ·{" "}
        <a href={card.run_url} target="_blank" rel="noopener">MLflow run</a> ·{" "}
        <a href={card.version_url} target="_blank" rel="noopener">model version</a>
      </p>
      <div class="cols">
        <div>
          <h3>Parameters</h3>
          <table class="grid kv">{Object.entries(card.params).map(([k, v]) => <tr><td>{k}</td><td>{String(v)}</td></tr>)}</table>
          <h3>Test metrics</h3>
          <table class="grid kv">{Object.entries(card.metrics).map(([k, v]) => <tr><td>{k}</td><td class="num">{fmt(v as number)}</td></tr>)}</table>
          <h3>ONNX</h3>
          <p>parity {card.onnx.parity || "not checked"}{card.onnx.max_abs_diff ? ` (max abs diff ${card.onnx.max_abs_diff})` : ""}</p>
        </div>
        <div>
          <h3>Features</h3>
          <p>numeric: {card.features.numeric.join(", ") || "-"}</p>
          <p>categorical: {card.features.categorical.join(", ") || "-"}</p>
          {Object.keys(card.features.derived).length ? <p>derived: {Object.entries(card.features.derived).map(([k, v]) => `${k} = ${v}`).join("; ")}</p> : null}
          <p>label: {card.label}</p>
          <h3>Data</h3>
          <table class="grid kv">
            {Object.entries(card.rows).map(([k, v]) => <tr><td>{k} rows</td><td class="num">{String(v)}</td></tr>)}
            {Object.entries(card.data).filter(([, v]) => v).map(([k, v]) => <tr><td>{k}</td><td><code>{String(v).slice(0, 16)}</code></td></tr>)}
          </table>
        </div>
      </div>
      {importance.length ? (
        <div>
          <h3>Permutation importance</h3>
          {importance.sort((a, b) => Math.abs(b[1]) - Math.abs(a[1])).slice(0, 15).map(([k, v]) => (
            <div class="imp"><span>{k}</span><i style={{ width: `${(70 * Math.abs(v)) / top}%` }} /> {fmt(v)}</div>
          ))}
        </div>
      ) : null}
      {Object.keys(card.slices).length ? (
        <div>
          <h3>Slices</h3>
          {Object.entries(card.slices).map(([column, rows]: [string, Json]) => {
            const keys = Array.from(new Set<string>(Object.values(rows).flatMap((r: Json) => Object.keys(r))));
            return (
              <table class="grid slices">
                <thead><tr><th>{column}</th>{keys.map((k) => <th>{k}</th>)}</tr></thead>
                <tbody>{Object.entries(rows).map(([value, r]: [string, Json]) => <tr><td>{value}</td>{keys.map((k) => <td class="num">{fmt(r[k])}</td>)}</tr>)}</tbody>
              </table>
            );
          })}
        </div>
      ) : null}
      <div class="plots">
        {card.plots.map((p: string) => (
          <figure><img alt={p} src={`${props.root}/api/pipelines/${encodeURIComponent(props.page.name)}/plots/${card.version}/${p}`} /><figcaption>{p.replace(".png", "").replace(/_/g, " ")}</figcaption></figure>
        ))}
      </div>
    </div>
  );
}

function Monitoring(props: { page: Json }) {
  const m = props.page.monitoring;
  if (!m || m.error) return <Failed part={m} what="the monitoring runs" />;
  if (!m.runs.length) return <p class="muted">no monitoring run yet</p>;
  const labels = m.runs.map((r: Json) => when(r.at).slice(5, 16));
  const volume = Array.isArray(props.page.volume) ? props.page.volume : [];
  const cov = m.label_coverage;
  return (
    <div>
      <p>
        latest run {when(m.latest.at)} on v{m.latest.model_version}: {m.latest.drifted ? <b class="warn">drift in {m.latest.drifted_features} feature(s)</b> : "no drift"}
        {m.latest.decayed ? <b class="warn"> · performance decayed</b> : null}
        {m.latest.slice_decay ? <b class="warn"> · {m.latest.decayed_slices} slice(s) decayed</b> : null}
        {m.latest.estimated_decay ? <b class="warn"> · estimated decay</b> : null}
        {m.latest.alerts && m.latest.alerts.length ? ` · alerts (${m.latest.alerts.join(", ")})` : ""}
        {m.latest.retrain.length ? ` · asked to retrain (${m.latest.retrain.join(", ")})` : ""}
      </p>
      <h3>Feature drift (PSI) over the last {m.runs.length} monitoring runs</h3>
      <Heatmap title="PSI per feature and run" rows={m.features} columns={labels} threshold={m.psi_threshold} value={(f, c) => m.runs[c].psi[f] ?? null} />
      <LineChart title="prediction drift (PSI of the scores)" threshold={m.psi_threshold} series={[{ name: "prediction PSI", points: m.runs.map((r: Json, i: number) => ({ label: labels[i], value: r.prediction_psi ?? null })) }]} />
      <LineChart
        title={`${m.metric}: realised on labeled predictions, estimated from the logged scores (no labels)`}
        series={[
          { name: `realised ${m.metric}`, points: m.runs.map((r: Json, i: number) => ({ label: labels[i], value: r.labeled_metric ?? null, mark: r.decayed })) },
          { name: `estimated ${m.metric}`, points: m.runs.map((r: Json, i: number) => ({ label: labels[i], value: r.estimated_metric ?? null, mark: r.estimated_decay })) },
        ]}
      />
      <p>label coverage (latest run): {cov && cov.share !== null ? `${cov.labeled_rows} of ${cov.predicted_rows} predictions labeled (${(100 * cov.share).toFixed(1)}%)` : "no delayed labels yet"}</p>
      <h3>Predictions logged per day</h3>
      {props.page.volume && props.page.volume.error ? <Failed part={props.page.volume} what="the prediction log" /> : <Bars title="rows logged per day" items={volume.map((d: Json) => ({ label: d.day, value: d.rows }))} />}
    </div>
  );
}

// The health check's incidents: open ones first, then the newest closed (when it opened, what, when it cleared).
function Incidents(props: { incidents: Json }) {
  const found = props.incidents;
  if (!found) return null;
  if (found.error) return <Failed part={found} what="the health incidents" />;
  const rows = [...found.open, ...[...found.closed].reverse()];
  if (!rows.length) return <p class="muted">health: no incident{found.unsent ? `; ${found.unsent} message(s) not sent yet` : ""}</p>;
  return (
    <table class="grid incidents">
      <thead><tr><th>health</th><th>opened</th><th>what</th><th>cleared</th></tr></thead>
      <tbody>
        {rows.map((i: Json) => (
          <tr data-incident={i.id} class={i.closed_at ? "" : "warn"}>
            <td>{i.check.replace("_", " ")}</td><td>{when(i.opened_at)}</td><td class="small">{i.summary}</td>
            <td>{i.closed_at ? when(i.closed_at) : <b>open</b>}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

function Quality(props: { root: string; page: Json }) {
  const q = props.page.quality;
  if (q.error) return <Failed part={q} what="the validation reports" />;
  const file = (rel: string | null) => (rel ? `${props.root}/files/${encodeURIComponent(props.page.name)}/${rel}` : null);
  return (
    <div>
      <h3>Validation of the last training runs</h3>
      {q.validations.length ? (
        <table class="grid validations">
          <thead><tr><th>run</th><th>result</th><th>expectations</th><th>failing</th><th>report</th></tr></thead>
          <tbody>
            {q.validations.map((v: Json) => (
              <tr>
                <td class="small">{v.run_id}</td>
                <td class={v.success ? "ok" : "warn"}>{v.success ? "passed" : "failed"}</td>
                <td class="num">{v.evaluated ?? "-"}</td>
                <td>{v.failures.map((f: Json) => <div>{f.expectation}{f.column ? ` on ${f.column}` : ""}: observed {JSON.stringify(f.observed)}</div>)}{v.quarantined.length ? <div>quarantined: {v.quarantined.length}</div> : null}</td>
                <td>
                  {file(v.report) ? <a href={file(v.report)!} target="_blank">report.json</a> : null}
                  {file(v.data_docs) ? <span> · <a href={file(v.data_docs)!} target="_blank">Data Docs</a></span> : null}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : <p class="muted">no validation report yet</p>}
      <h3>Quarantined batches</h3>
      {q.quarantined.length ? (
        <table class="grid quarantine">
          <thead><tr><th>run</th><th>file</th><th>why</th><th>where it is now</th><th>report</th></tr></thead>
          <tbody>
            {q.quarantined.map((b: Json) => (
              <tr>
                <td class="small">{b.run}</td>
                <td>{b.file}</td>
                <td>{b.reasons.map((r: string) => <div class="small">{r}</div>)}</td>
                <td class="small"><code>{b.location}</code><div class="muted">from {b.input}</div></td>
                <td>
                  {file(b.report) ? <a href={file(b.report)!} target="_blank">report</a> : null}
                  {file(b.data_docs) ? <span> · <a href={file(b.data_docs)!} target="_blank">Data Docs</a></span> : null}
                </td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : <p class="muted">nothing quarantined</p>}
    </div>
  );
}

export function PipelinePage(props: { root: string; name: string }) {
  const [page, setPage] = useState<Json>(null);
  const [error, setError] = useState("");
  const load = () => getJson(`${props.root}/api/pipelines/${encodeURIComponent(props.name)}/page`).then(setPage, (e) => setError(String(e.message || e)));
  useEffect(() => {
    load();
  }, [props.name]);
  if (error) return <p class="error">cannot load {props.name}: {error}</p>;
  if (!page) return <p>loading…</p>;
  const reg = page.registry;
  return (
    <main>
      <h1>{page.name} <span class="muted">({page.model})</span></h1>
      <div class="summary">
        <div><h3>Champion</h3>{reg.error ? <span class="error">cannot ask MLflow: {reg.error}</span> : <ChampionText champion={reg.champion} />}{reg.champion && reg.champion.why ? <div class="small">why: {reg.champion.why} (by {reg.champion.by})</div> : null}</div>
        {["training", "scoring", "monitoring"].map((kind) => (
          <div><h3>last {kind}</h3>{page.runs.error ? <span class="error">{page.runs.error}</span> : <RunCell root={props.root} dag={page.dags[kind]} run={page.runs[kind]} />}</div>
        ))}
        <div><h3>alert</h3>{page.alert ? <div class="warn">{page.alert.reasons.join(" + ")} since {when(page.alert.at)}</div> : null}
          <OpenIncidents incidents={page.incidents} />
          {!page.alert && !(page.incidents && page.incidents.open && page.incidents.open.length) ? <span class="muted">none</span> : null}</div>
      </div>
      <p class="muted">signed in as {page.user}</p>
      <Section title="Actions" id="actions"><Actions root={props.root} page={page} reload={load} /></Section>
      <Section title="Waiting for a decision" id="approvals"><Approvals root={props.root} page={page} reload={load} /></Section>
      <Section title="Champion timeline" id="timeline"><Timeline page={page} /></Section>
      <Section title="Champion card" id="card">{reg.error ? <Failed part={reg} what="the registry" /> : <Card root={props.root} page={page} />}</Section>
      <Section title="Monitoring" id="monitoring"><Monitoring page={page} /><Incidents incidents={page.incidents} /></Section>
      <Section title="Data quality" id="quality"><Quality root={props.root} page={page} /></Section>
    </main>
  );
}
