// Drawing a result: the top tags as bars, and the taggram (tags x chunks) on a canvas,
// drawn as predict.py --taggram draws it (a row per tag in model order, viridis from 0 to 1).

// viridis at 0, 0.25, 0.5, 0.75, 1 (matplotlib), interpolated linearly between.
const VIRIDIS = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
const MAX_TICKS = 12; // time labels under the taggram, as plots.taggram_figure
const ROW = 16, LABEL_WIDTH = 90, AXIS = 34, LEGEND = 46, MIN_COLUMN = 3;

/** "m:ss" */
export function clock(seconds) {
  const s = Math.floor(seconds);
  return `${Math.floor(s / 60)}:${String(s % 60).padStart(2, "0")}`;
}

export function viridis(p) {
  const x = Math.min(Math.max(p, 0), 1) * (VIRIDIS.length - 1);
  const i = Math.min(Math.floor(x), VIRIDIS.length - 2), f = x - i;
  const [a, b] = [VIRIDIS[i], VIRIDIS[i + 1]];
  return `rgb(${a.map((v, k) => Math.round(v + f * (b[k] - v))).join(",")})`;
}

/** One row per tag: name, a bar as long as its probability, the value. */
export function drawTagBars(container, ranked) {
  container.replaceChildren(...ranked.map(([tag, p]) => {
    const row = document.createElement("div");
    row.className = "tag";
    row.dataset.tag = tag;
    row.dataset.probability = String(p);
    const name = Object.assign(document.createElement("span"), { className: "name", textContent: tag });
    const bar = Object.assign(document.createElement("span"), { className: "bar" });
    bar.style.setProperty("--p", p.toFixed(4));
    const value = Object.assign(document.createElement("span"), { className: "value", textContent: p.toFixed(3) });
    row.append(name, bar, value);
    return row;
  }));
}

/** Tags (rows) x chunks (columns), coloured by probability, times of the chunk centres underneath. */
export function drawTaggram(canvas, chunkProbs, tags, centresMs) {
  const nChunks = centresMs.length, nTags = tags.length;
  const width = Math.max(canvas.parentElement.clientWidth, LABEL_WIDTH + LEGEND + nChunks * MIN_COLUMN);
  const height = nTags * ROW + AXIS;
  const scale = window.devicePixelRatio || 1;
  Object.assign(canvas, { width: width * scale, height: height * scale });
  Object.assign(canvas.style, { width: `${width}px`, height: `${height}px` });
  const g = canvas.getContext("2d");
  g.scale(scale, scale);
  g.clearRect(0, 0, width, height);
  const column = (width - LABEL_WIDTH - LEGEND) / nChunks;
  canvas.dataset.cells = JSON.stringify([LABEL_WIDTH, 0, width - LABEL_WIDTH - LEGEND, nTags * ROW].map((v) => Math.floor(v * scale)));
  for (let k = 0; k < nChunks; k++) {
    for (let t = 0; t < nTags; t++) {
      g.fillStyle = viridis(chunkProbs[k * nTags + t]);
      g.fillRect(LABEL_WIDTH + k * column, t * ROW, Math.ceil(column), ROW);
    }
  }
  g.fillStyle = "#222";
  g.font = "12px system-ui, sans-serif";
  g.textBaseline = "middle";
  g.textAlign = "right";
  tags.forEach((tag, t) => g.fillText(tag, LABEL_WIDTH - 6, t * ROW + ROW / 2));
  g.textAlign = "center";
  g.textBaseline = "top";
  const every = Math.max(1, Math.ceil(nChunks / MAX_TICKS));
  for (let k = 0; k < nChunks; k += every) {
    const x = LABEL_WIDTH + (k + 0.5) * column;
    g.fillRect(x, nTags * ROW, 1, 4);
    g.fillText(clock(centresMs[k] / 1000), x, nTags * ROW + 6);
  }
  g.fillText("time (centre of each chunk)", LABEL_WIDTH + (width - LABEL_WIDTH - LEGEND) / 2, nTags * ROW + 20);
  drawLegend(g, width - LEGEND + 10, nTags * ROW);
}

function drawLegend(g, x, height) {
  for (let y = 0; y < height; y++) {
    g.fillStyle = viridis(1 - y / height);
    g.fillRect(x, y, 10, 1);
  }
  g.fillStyle = "#222";
  g.textAlign = "left";
  g.textBaseline = "top";
  g.fillText("1", x + 14, 0);
  g.textBaseline = "bottom";
  g.fillText("0", x + 14, height);
}
