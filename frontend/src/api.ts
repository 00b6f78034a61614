// Requests of the model pages: the plugin's own app (under `root`, e.g. /mlops) and Airflow's REST API.
// Both are the same origin as the Airflow UI, so the UI's session cookie authenticates them; Airflow
// checks its own permissions for DAG runs and approvals, the plugin for rollbacks.

export type Json = any;

export class ApiError extends Error {
  status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

async function answer(response: Response): Promise<Json> {
  const text = await response.text();
  let body: Json = null;
  try {
    body = text ? JSON.parse(text) : null;
  } catch {
    body = text;
  }
  if (!response.ok) {
    const detail = body && typeof body === "object" ? body.detail ?? JSON.stringify(body) : body;
    throw new ApiError(response.status, `${response.status}: ${typeof detail === "string" ? detail : JSON.stringify(detail)}`);
  }
  return body;
}

export function airflowBase(root: string): string {
  // The app is mounted at <airflow base>/mlops.
  return root.replace(/\/mlops$/, "");
}

export async function getJson(url: string): Promise<Json> {
  return answer(await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } }));
}

export async function sendJson(url: string, method: string, body: Json, action = false): Promise<Json> {
  const headers: Record<string, string> = { "Content-Type": "application/json", Accept: "application/json" };
  if (action) headers["X-Airflow-MLOps"] = "1";
  return answer(await fetch(url, { method, credentials: "same-origin", headers, body: JSON.stringify(body) }));
}

export function triggerRetrain(root: string, dagId: string, reason: string, force: boolean): Promise<Json> {
  const conf: Record<string, Json> = { force_retrain: force };
  if (reason) conf.reason = reason;
  return sendJson(`${airflowBase(root)}/api/v2/dags/${encodeURIComponent(dagId)}/dagRuns`, "POST", {
    logical_date: null,
    conf,
    note: reason ? `retrain from the model page: ${reason}` : "retrain from the model page",
  });
}

export function answerApproval(root: string, request: Json, option: string, comment: string): Promise<Json> {
  const path = [
    "api/v2/dags",
    encodeURIComponent(request.dag_id),
    "dagRuns",
    encodeURIComponent(request.run_id),
    "taskInstances",
    encodeURIComponent(request.task_id),
    String(request.map_index),
    "hitlDetails",
  ].join("/");
  const params_input: Record<string, Json> = {};
  if (comment && request.params && "comment" in request.params) params_input.comment = comment;
  return sendJson(`${airflowBase(root)}/${path}`, "PATCH", { chosen_options: [option], params_input });
}

export function rollback(root: string, pipeline: string, version: string, reason: string): Promise<Json> {
  return sendJson(`${root}/api/pipelines/${encodeURIComponent(pipeline)}/rollback`, "POST", { to_version: version, reason }, true);
}
