// loadgate's additions to Locust's web UI (linked into Locust's page by loadgate/harness/webui.py).
//
// Locust 2.47's extended tabs can only hold a table, and always come after Locust's own tabs. This
// script, without touching React's state or the DOM order:
//  - orders the tabs with CSS `order` (the tab bar is a flex row), so loadgate's tabs follow
//    Statistics, Charts and Failures and come before Locust's secondary tabs;
//  - shows the LLM charts page (llm-charts.html) in the "LLM charts" tab, whose own panel is empty.
(() => {
  "use strict";
  const ORDER = [
    "Statistics", "Charts", "Failures",
    "LLM metrics", "LLM charts", "SLA", "LLM summary",
    "Exceptions", "Current Ratio", "Download Data", "Logs", "Workers",
  ];
  const CHARTS_TITLE = "LLM charts";
  const FRAME_ID = "loadgate-llm-charts";

  const tabList = () => document.querySelector('[role="tablist"]');

  function orderTabs(list) {
    list.querySelectorAll('[role="tab"]').forEach((tab, index) => {
      const rank = ORDER.indexOf(tab.textContent.trim());
      const order = String(rank < 0 ? ORDER.length + index : rank);
      if (tab.style.order !== order) tab.style.order = order;
    });
  }

  function showCharts(list) {
    let frame = document.getElementById(FRAME_ID);
    const selected = list && list.querySelector('[role="tab"][aria-selected="true"]');
    const active = Boolean(selected && selected.textContent.trim() === CHARTS_TITLE);
    if (!active) {
      if (frame) frame.style.display = "none";
      return;
    }
    // The tab bar's container (MUI Container) also holds the selected tab's panel: put the page there.
    const container = list.closest(".MuiContainer-root") || list.parentElement.parentElement;
    if (!frame || !container.contains(frame)) {
      if (frame) frame.remove();
      frame = document.createElement("iframe");
      frame.id = FRAME_ID;
      frame.title = "LLM charts";
      frame.src = "./loadgate/llm-charts.html";
      container.appendChild(frame);
    }
    frame.style.display = "block";
  }

  function update() {
    const list = tabList();
    if (list) orderTabs(list);
    showCharts(list);
  }

  new MutationObserver(update).observe(document.documentElement, {
    childList: true,
    subtree: true,
    attributes: true,
    attributeFilter: ["aria-selected"],
  });
  update();
})();
