// Entry point: reads what the server put on #mlops-app (mount root, view, pipeline) and renders it.
import { render } from "preact";
import { followLinksOutOfTheFrame } from "./frame";
import { Overview } from "./overview";
import { PipelinePage } from "./pipeline";

const element = document.getElementById("mlops-app");
followLinksOutOfTheFrame(document);
if (element) {
  const root = element.dataset.root || "";
  const view = element.dataset.view;
  const pipeline = element.dataset.pipeline || "";
  element.textContent = "";
  if (view === "pipeline") render(<PipelinePage root={root} name={pipeline} />, element);
  else if (view === "overview") render(<Overview root={root} />, element);
  else render(<p class="muted">{pipeline} is not a DAG of an airflow-mlops pipeline.</p>, element);
}
