// Links out of Airflow's frame. Airflow 3.3 shows external views in an iframe sandboxed with
// "allow-scripts allow-same-origin allow-forms allow-downloads": no top navigation and no pop-ups,
// so target=_top and target=_blank links do nothing there. The frame is of Airflow's own origin,
// so the page can ask the top window itself: an Airflow link is pushed onto the top window's
// history and announced with a popstate event (Airflow's router follows it, as after "back"); a
// link to another site (MLflow) is opened by the top window in a new tab.

export function followLinksOutOfTheFrame(doc: Document): void {
  const top = window.top;
  if (!top || top === window) return; // not framed: links work as they are
  doc.addEventListener("click", (event) => {
    if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey) return;
    const link = (event.target as Element | null)?.closest?.("a[href]") as HTMLAnchorElement | null;
    if (!link || (link.target !== "_top" && link.target !== "_blank")) return;
    const url = new URL(link.href, window.location.href);
    event.preventDefault();
    try {
      if (link.target === "_top" && url.origin === top.location.origin) {
        top.history.pushState({}, "", url.pathname + url.search + url.hash);
        top.dispatchEvent(new PopStateEvent("popstate", { state: {} }));
      } else {
        top.open(url.href, "_blank", "noopener");
      }
    } catch {
      window.location.href = url.href; // another origin after all: at least open it here
    }
  });
}
