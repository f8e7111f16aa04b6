// The job page's charts: fetch the points the page doesn't have yet, append them, and
// keep polling while the job is live. Each chart element says which column it plots
// (data-chart) and how many points it shows (data-points).
(function () {
  "use strict";
  const POLL_MS = 3000;
  const page = document.getElementById("job-page");
  if (!page || typeof uPlot === "undefined") return;
  const url = page.dataset.metricsUrl;
  const data = {
    train: { step: [], loss: [], learning_rate: [], tokens_per_second: [], memory_bytes: [] },
    eval: { step: [], loss: [] },
  };
  let polling = false; // a poll is scheduled or in flight
  let live = true;

  function lastStep(series) {
    const steps = series.step;
    return steps.length ? steps[steps.length - 1] : -1;
  }

  // [x, y...] columns for one chart; loss merges train and eval steps.
  function columns(name) {
    if (name === "loss") {
      const steps = Array.from(new Set(data.train.step.concat(data.eval.step))).sort((a, b) => a - b);
      const train = new Map(data.train.step.map((s, i) => [s, data.train.loss[i]]));
      const evals = new Map(data.eval.step.map((s, i) => [s, data.eval.loss[i]]));
      return [steps, steps.map((s) => train.get(s) ?? null), steps.map((s) => evals.get(s) ?? null)];
    }
    const scale = name === "memory_bytes" ? 1 / 1024 ** 3 : 1;
    return [data.train.step, data.train[name].map((v) => (v == null ? null : v * scale))];
  }

  function seriesFor(name) {
    if (name === "loss") {
      return [
        { label: "step" },
        { label: "train", stroke: "#2563eb", width: 2, spanGaps: true },
        { label: "eval", stroke: "#dc2626", width: 2, spanGaps: true, points: { show: true, size: 6 } },
      ];
    }
    return [{ label: "step" }, { label: name.replace(/_/g, " "), stroke: "#1f7a4d", width: 2, spanGaps: true }];
  }

  function draw() {
    const empty = data.train.step.length === 0 && data.eval.step.length === 0;
    document.querySelectorAll(".chart-empty").forEach((el) => (el.hidden = !empty));
    document.querySelectorAll("[data-chart]").forEach((el) => {
      const name = el.dataset.chart;
      const cols = columns(name);
      if (!el._chart) {
        el._chart = new uPlot(
          {
            width: Math.max(240, el.clientWidth || 480),
            height: 200,
            scales: { x: { time: false } },
            series: seriesFor(name),
            axes: [{ label: "step" }, {}],
          },
          cols,
          el,
        );
      } else {
        el._chart.setData(cols);
      }
      el.dataset.points = String(cols[0].length);
    });
  }

  function append(target, incoming) {
    Object.keys(target).forEach((key) => target[key].push(...(incoming[key] || [])));
  }

  function schedule(delay) {
    polling = true;
    setTimeout(poll, delay);
  }

  async function poll() {
    const query = `?after_train=${lastStep(data.train)}&after_eval=${lastStep(data.eval)}`;
    try {
      const response = await fetch(url + query, { headers: { Accept: "application/json" } });
      if (response.ok) {
        const body = await response.json();
        append(data.train, body.train);
        append(data.eval, body.eval);
        live = body.live;
        draw();
      }
    } catch (err) {
      // A dropped request: try again on the next tick.
    }
    if (live) schedule(POLL_MS);
    else polling = false;
  }

  // The status panel says whether the job is live; a Resume makes it live again.
  function followStatus() {
    const panel = document.getElementById("job-status");
    if (panel && panel.dataset.live === "true" && !polling) {
      live = true;
      schedule(POLL_MS);
    }
  }

  document.body.addEventListener("htmx:afterSettle", () => {
    draw(); // a tab swap brings new chart elements
    followStatus();
  });
  window.addEventListener("resize", () => {
    document.querySelectorAll("[data-chart]").forEach((el) => {
      if (el._chart) el._chart.setSize({ width: Math.max(240, el.clientWidth), height: 200 });
    });
  });
  schedule(0);
})();
