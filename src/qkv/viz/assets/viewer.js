/* qkv attention viewer. Reads the JSON embedded in #qkv-data; never touches the network.
 *
 * Token strings only ever reach the page through textContent, setAttribute or canvas fillText,
 * never through innerHTML, so a token holding a closing script tag or markup stays text.
 * Arrays arrive as base64 little-endian float32 in C order (exact: the formula panel checks
 * the model's own numbers, not rounded copies).
 */
(function () {
  "use strict";

  const data = JSON.parse(document.getElementById("qkv-data").textContent);
  const L = data.num_layers, H = data.num_heads, T = data.num_tokens;
  const DK = data.head_dim, DV = data.value_dim;
  const tokens = data.tokens, special = data.special;
  const CHECK_TOLERANCE = data.check_tolerance;
  const HKV = data.num_kv_heads || H;  // key/value heads (fewer under grouped-query attention)

  // "query head 5 shares key/value head 1 of 3 with query heads 3-5" ("" without grouping)
  function kvShare(h) {
    if (HKV >= H) return "";
    const size = H / HKV, g = Math.floor(h / size);
    return "grouped-query attention: query head " + h + " shares key/value head " + g + " of " + HKV +
      " with query heads " + (g * size) + "–" + (g * size + size - 1) + ".";
  }

  function decode(entry) {
    const raw = atob(entry.data);
    const bytes = new Uint8Array(raw.length);
    for (let i = 0; i < raw.length; i++) bytes[i] = raw.charCodeAt(i);
    const array = new Float32Array(bytes.buffer);
    const expected = entry.shape.reduce((a, b) => a * b, 1);
    if (array.length !== expected) throw new Error("qkv viewer: corrupt embedded array");
    return array;
  }
  const W = decode(data.weights);        // (L, H, T, T)
  const Q = decode(data.queries);        // (L, H, T, DK)
  const K = decode(data.keys);           // (L, H, T, DK)
  const V = decode(data.values);         // (L, H, T, DV)
  const Z = decode(data.head_outputs);   // (L, H, T, DV)

  const state = { layer: 0, head: 0, mode: "show", query: null };
  const $ = (id) => document.getElementById(id);
  const SVG_NS = $("lines").namespaceURI;  // the HTML parser put the inline <svg> there

  function row(array, dim, l, h, t) {
    const start = ((l * H + h) * T + t) * dim;
    return array.subarray(start, start + dim);
  }
  function fmt(x) {
    if (x === -Infinity) return "−∞";
    if (x === 0) return "0";
    return Math.abs(x) >= 1e-3 && Math.abs(x) < 1e5 ? x.toPrecision(4) : x.toExponential(3);
  }
  function shortToken(s, n) {
    const shown = s.replace(/\n/g, "⏎").replace(/\t/g, "⇥");
    return shown.length > n ? shown.slice(0, n - 1) + "…" : shown;
  }
  function fmtVector(v, n) {  // the first n entries and the last, as `qkv explain` prints them
    if (v.length <= n + 1) return "[" + Array.from(v, fmt).join(", ") + "]";
    return "[" + Array.from(v.slice(0, n), fmt).join(", ") + ", …, " + fmt(v[v.length - 1]) + "]";
  }
  function el(tag, text, cls) {
    const node = document.createElement(tag);
    if (text !== undefined && text !== null) node.textContent = text;
    if (cls) node.className = cls;
    return node;
  }

  // ---- which tokens are shown, and the weights as displayed -------------------------------
  function visibleTokens() {
    const all = tokens.map((_, i) => i);
    if (state.mode !== "hide") return all;
    const kept = all.filter((i) => !special[i]);
    return kept.length ? kept : all;
  }
  // Displayed matrix over the visible tokens: (n, n). In "hide" mode each row is renormalised
  // over the kept keys, i.e. the distribution conditioned on not attending to special tokens.
  function displayed(l, h) {
    const idx = visibleTokens(), n = idx.length;
    const vals = new Float64Array(n * n);
    for (let r = 0; r < n; r++) {
      const wrow = row(W, T, l, h, idx[r]);
      let total = 0;
      for (let c = 0; c < n; c++) { vals[r * n + c] = wrow[idx[c]]; total += wrow[idx[c]]; }
      if (state.mode === "hide" && total > 0) for (let c = 0; c < n; c++) vals[r * n + c] /= total;
    }
    return { idx, n, vals };
  }
  function colour(v) {  // 0 -> white, 1 -> dark blue
    const t = Math.max(0, Math.min(1, v));
    return [Math.round(255 - t * 247), Math.round(255 - t * 207), Math.round(255 - t * 148)];
  }

  // ---- heatmap ------------------------------------------------------------------------------
  const heat = { cell: 1, margin: 0, mat: null };
  function drawHeatmap() {
    const mat = displayed(state.layer, state.head);
    heat.mat = mat;
    const canvas = $("heatmap"), ctx = canvas.getContext("2d");
    // Up to 720 px so that ~70 tokens still get 10 px cells and readable labels.
    const cell = Math.max(3, Math.min(28, Math.floor(Math.max(480, Math.min(10 * mat.n, 720)) / mat.n)));
    const labels = cell >= 9;
    const font = (cell >= 12 ? 11 : cell - 1) + "px ui-monospace, monospace";
    ctx.font = font;
    let margin = 4;
    if (labels) for (const i of mat.idx) margin = Math.max(margin, ctx.measureText(shortToken(tokens[i], 14)).width + 8);
    margin = Math.ceil(margin);
    heat.cell = cell; heat.margin = margin;
    canvas.dataset.cell = cell; canvas.dataset.margin = margin;  // read by the browser test
    const size = margin + mat.n * cell, ratio = window.devicePixelRatio || 1;
    canvas.width = size * ratio; canvas.height = size * ratio;
    canvas.style.width = size + "px"; canvas.style.height = size + "px";
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.fillStyle = "#fff"; ctx.fillRect(0, 0, size, size);
    for (let r = 0; r < mat.n; r++) {
      for (let c = 0; c < mat.n; c++) {
        const [red, green, blue] = colour(mat.vals[r * mat.n + c]);
        ctx.fillStyle = "rgb(" + red + "," + green + "," + blue + ")";
        ctx.fillRect(margin + c * cell, margin + r * cell, cell, cell);
        if (state.mode === "grey" && (special[mat.idx[r]] || special[mat.idx[c]])) {
          ctx.fillStyle = "rgba(150,150,150,0.6)";
          ctx.fillRect(margin + c * cell, margin + r * cell, cell, cell);
        }
      }
    }
    if (labels) {
      ctx.font = font;
      ctx.textBaseline = "middle";
      mat.idx.forEach((i, r) => {
        ctx.fillStyle = special[i] ? "#8a939c" : "#1b1f24";
        ctx.textAlign = "right";
        ctx.fillText(shortToken(tokens[i], 14), margin - 4, margin + (r + 0.5) * cell);
        ctx.save();
        ctx.translate(margin + (r + 0.5) * cell, margin - 4);
        ctx.rotate(-Math.PI / 2);
        ctx.textAlign = "left";
        ctx.fillText(shortToken(tokens[i], 14), 0, 0);
        ctx.restore();
      });
    }
    const selected = mat.idx.indexOf(state.query);
    if (selected >= 0) {
      ctx.strokeStyle = "#c0392b"; ctx.lineWidth = 2;
      ctx.strokeRect(margin + 1, margin + selected * cell + 1, mat.n * cell - 2, cell - 2);
    }
  }
  function cellAt(event) {
    const box = $("heatmap").getBoundingClientRect();
    const c = Math.floor((event.clientX - box.left - heat.margin) / heat.cell);
    const r = Math.floor((event.clientY - box.top - heat.margin) / heat.cell);
    if (!heat.mat || r < 0 || c < 0 || r >= heat.mat.n || c >= heat.mat.n) return null;
    return { r, c, i: heat.mat.idx[r], j: heat.mat.idx[c] };
  }
  function describeCell(hit) {
    const v = heat.mat.vals[hit.r * heat.mat.n + hit.c];
    let text = "q[" + hit.i + "] " + JSON.stringify(tokens[hit.i]) + " → k[" + hit.j + "] " +
      JSON.stringify(tokens[hit.j]) + ": " + fmt(v);
    if (state.mode === "hide") text += " (renormalised; model: " + fmt(row(W, T, state.layer, state.head, hit.i)[hit.j]) + ")";
    return text;
  }
  $("heatmap").addEventListener("mousemove", (event) => {
    const hit = cellAt(event), tip = $("heatmap-tooltip");
    if (!hit) { tip.hidden = true; return; }
    const text = describeCell(hit);
    tip.textContent = text; $("heatmap-readout").textContent = text;
    tip.hidden = false;
    const box = $("heatmap").getBoundingClientRect();
    tip.style.left = (event.clientX - box.left + 12) + "px";
    tip.style.top = (event.clientY - box.top + 12) + "px";
  });
  $("heatmap").addEventListener("mouseleave", () => { $("heatmap-tooltip").hidden = true; });
  $("heatmap").addEventListener("click", (event) => {
    const hit = cellAt(event);
    if (hit) selectQuery(hit.i);
  });

  // Keyboard: arrows move a cell cursor (its value goes to the readout), Enter explains the row.
  const cursor = { r: 0, c: 0 };
  $("heatmap").addEventListener("keydown", (event) => {
    const moves = { ArrowUp: [-1, 0], ArrowDown: [1, 0], ArrowLeft: [0, -1], ArrowRight: [0, 1] };
    const n = heat.mat.n, clamp = (x) => Math.max(0, Math.min(n - 1, x));
    cursor.r = clamp(cursor.r); cursor.c = clamp(cursor.c);
    if (moves[event.key]) {
      cursor.r = clamp(cursor.r + moves[event.key][0]);
      cursor.c = clamp(cursor.c + moves[event.key][1]);
    } else if (event.key === "Enter" || event.key === " ") {
      selectQuery(heat.mat.idx[cursor.r]);
    } else {
      return;
    }
    event.preventDefault();
    const hit = { r: cursor.r, c: cursor.c, i: heat.mat.idx[cursor.r], j: heat.mat.idx[cursor.c] };
    $("heatmap-readout").textContent = describeCell(hit);
  });

  // ---- token-to-token lines -----------------------------------------------------------------
  const LINE = { step: 18, left: 150, right: 290, pad: 14 };
  function svg(tag, attrs) {
    const node = document.createElementNS(SVG_NS, tag);
    for (const key in attrs) node.setAttribute(key, attrs[key]);
    return node;
  }
  // The tokens are built once per head (drawLines); hovering only redraws lines and highlights
  // (updateLines), so the element under the pointer is never replaced.
  const lines = { mat: null, edges: null, marks: null };
  const lineY = (r) => LINE.pad + (r + 0.5) * LINE.step;
  function drawLines() {
    const root = $("lines"), mat = displayed(state.layer, state.head);
    lines.mat = mat;
    while (root.firstChild) root.removeChild(root.firstChild);
    root.setAttribute("width", LINE.right + 150);
    root.setAttribute("height", LINE.pad * 2 + mat.n * LINE.step);
    lines.marks = svg("g", {}); lines.edges = svg("g", {});
    root.appendChild(lines.marks); root.appendChild(lines.edges);
    mat.idx.forEach((i, r) => {
      for (const side of ["q", "k"]) {
        const text = svg("text", {
          x: side === "q" ? LINE.left : LINE.right, y: lineY(r), "dominant-baseline": "middle",
          "text-anchor": side === "q" ? "end" : "start", "data-index": i,
          class: "tok tok-" + side + (special[i] ? " special" : "") + (side === "q" && i === state.query ? " selected" : ""),
        });
        text.textContent = shortToken(tokens[i], 16);
        const title = svg("title", {});
        title.textContent = (side === "q" ? "query " : "key ") + i + ": " + tokens[i];
        text.appendChild(title);
        root.appendChild(text);
      }
    });
    if (hovered && hovered.r < mat.n) hoverToken(hovered.side, hovered.r);
    else updateLines(null);
  }
  // Pointer handling by row and side of the whole SVG: a row is easier to hit than the glyphs,
  // and hit-testing text that was just re-rendered proved unreliable in Chromium.
  function tokenAt(event) {
    const box = $("lines").getBoundingClientRect();
    const r = Math.floor((event.clientY - box.top - LINE.pad) / LINE.step);
    if (!lines.mat || r < 0 || r >= lines.mat.n) return null;
    return { side: event.clientX - box.left < (LINE.left + LINE.right) / 2 ? "q" : "k", r };
  }
  let hovered = null;
  $("lines").addEventListener("mousemove", (event) => {
    const hit = tokenAt(event);
    if (hit && hovered && hit.side === hovered.side && hit.r === hovered.r) return;
    hovered = hit;
    hit ? hoverToken(hit.side, hit.r) : hoverToken(null, 0);
  });
  $("lines").addEventListener("mouseleave", () => { hovered = null; hoverToken(null, 0); });
  $("lines").addEventListener("click", (event) => {
    const hit = tokenAt(event);
    if (hit) selectQuery(lines.mat.idx[hit.r]);
  });
  function updateLines(focus) {
    const mat = lines.mat;
    for (const group of [lines.edges, lines.marks]) while (group.firstChild) group.removeChild(group.firstChild);
    for (let r = 0; r < mat.n; r++) {
      for (let c = 0; c < mat.n; c++) {
        const v = mat.vals[r * mat.n + c];
        const shown = focus ? (focus.side === "q" ? r === focus.r : c === focus.r) : v >= 0.02;
        if (!shown || v <= 0) continue;
        lines.edges.appendChild(svg("line", {
          x1: LINE.left + 6, y1: lineY(r), x2: LINE.right - 6, y2: lineY(c), stroke: "#08306b",
          "stroke-width": focus ? 1 + 3 * v : 1.5, "stroke-opacity": focus ? Math.max(0.08, v) : 0.6 * v,
        }));
      }
    }
    if (!focus) return;
    for (let o = 0; o < mat.n; o++) {  // shade each token on the other side by its weight
      const v = focus.side === "q" ? mat.vals[focus.r * mat.n + o] : mat.vals[o * mat.n + focus.r];
      const x = focus.side === "q" ? LINE.right - 3 : LINE.left - 143;
      lines.marks.appendChild(svg("rect", { x, y: lineY(o) - 8, width: 146, height: 16, class: "bar", "fill-opacity": 0.45 * v }));
    }
  }
  function hoverToken(side, r) {
    if (side === null) { updateLines(null); $("lines-readout").textContent = "Left: queries. Right: keys. Line opacity is the weight."; return; }
    updateLines({ side, r });
    const mat = lines.mat, i = mat.idx[r];
    const value = (o) => (side === "q" ? mat.vals[r * mat.n + o] : mat.vals[o * mat.n + r]);
    let best = 0;
    for (let o = 1; o < mat.n; o++) if (value(o) > value(best)) best = o;
    const other = mat.idx[best];
    $("lines-readout").textContent = (side === "q"
      ? "query " + i + " " + JSON.stringify(tokens[i]) + " attends most to key "
      : "key " + i + " " + JSON.stringify(tokens[i]) + " is attended most by query ") +
      other + " " + JSON.stringify(tokens[other]) + " (" + fmt(value(best)) + ")";
  }

  // ---- layers x heads overview ----------------------------------------------------------------
  function drawOverview() {
    const root = $("overview");
    while (root.firstChild) root.removeChild(root.firstChild);
    root.style.gridTemplateColumns = "32px repeat(" + H + ", 60px)";
    root.appendChild(el("div", "", "axis"));
    for (let h = 0; h < H; h++) root.appendChild(el("div", "H" + h, "axis"));
    for (let l = 0; l < L; l++) {
      root.appendChild(el("div", "L" + l, "axis"));
      for (let h = 0; h < H; h++) {
        const mat = displayed(l, h);
        const small = document.createElement("canvas");
        small.width = mat.n; small.height = mat.n;
        const image = small.getContext("2d").createImageData(mat.n, mat.n);
        for (let p = 0; p < mat.n * mat.n; p++) {
          const [red, green, blue] = colour(mat.vals[p]);
          image.data.set([red, green, blue, 255], p * 4);
        }
        small.getContext("2d").putImageData(image, 0, 0);
        const tile = document.createElement("canvas");
        tile.width = 56; tile.height = 56;
        const ctx = tile.getContext("2d");
        ctx.imageSmoothingEnabled = false;
        ctx.drawImage(small, 0, 0, 56, 56);
        tile.dataset.layer = l; tile.dataset.head = h;
        tile.title = "layer " + l + ", head " + h;
        if (l === state.layer && h === state.head) tile.className = "current";
        tile.addEventListener("click", () => select(l, h));
        root.appendChild(tile);
      }
    }
  }

  // ---- "what happens without it": each head's zero-ablation effect, precomputed in Python ----
  function drawAblation() {
    const root = $("ablation");
    while (root.firstChild) root.removeChild(root.firstChild);
    const ab = data.ablation;
    if (!ab) {
      root.appendChild(el("p", "Not computed for this view: it needs a decoder (a next-token loss) and a text of two or more tokens; `qkv show --out X.html` computes it unless --no-ablation.", "muted"));
      return;
    }
    const d = ab.effects[state.layer][state.head];
    const ranked = [];
    for (let l = 0; l < L; l++) for (let h = 0; h < H; h++) ranked.push([ab.effects[l][h], l, h]);
    ranked.sort((a, b) => b[0] - a[0]);
    const rank = ranked.findIndex((r) => r[1] === state.layer && r[2] === state.head) + 1;
    const sign = d >= 0 ? "+" : "";
    root.appendChild(el("p", "Without layer " + state.layer + ", head " + state.head + " (its z zeroed) the " + ab.metric +
      " goes from " + fmt(ab.baseline) + " to " + fmt(ab.baseline + d) + " (" + sign + fmt(d) + "): rank " + rank +
      " of " + (L * H) + " heads by how much the loss rises.", "readout"));
    const list = el("ol", "");
    ranked.slice(0, Math.min(5, ranked.length)).forEach((r) => {
      const item = el("li", "layer " + r[1] + ", head " + r[2] + ": " + (r[0] >= 0 ? "+" : "") + fmt(r[0]));
      item.style.cursor = "pointer";
      item.addEventListener("click", () => select(r[1], r[2]));
      list.appendChild(item);
    });
    root.appendChild(el("p", "The heads this text needs most (click to select):", "muted"));
    root.appendChild(list);
  }

  // ---- the formula panel: softmax(q·k / sqrt(d_k)) v for one query, recomputed here ---------
  // The steps and their numbers follow `qkv explain`. Arithmetic is float64 on the exact
  // float32 q, k, v, so the check measures the model against the formula.
  function attentionFor(l, h, i) {
    const q = row(Q, DK, l, h, i), dots = [], scores = [];
    for (let j = 0; j < T; j++) {
      const k = row(K, DK, l, h, j);
      let dot = 0;
      for (let d = 0; d < DK; d++) dot += q[d] * k[d];
      dots.push(dot);
      scores.push(data.causal && j > i ? -Infinity : dot * data.scale);
    }
    // exp(s_j) as in the formula; shift by the max only where exp would overflow float64.
    const top = Math.max(...scores), shift = top > 700 ? top : 0;
    const exps = scores.map((s) => (s === -Infinity ? 0 : Math.exp(s - shift)));
    const total = exps.reduce((a, b) => a + b, 0);
    const probs = exps.map((e) => (total > 0 ? e / total : 0));
    const z = new Float64Array(DV);
    const weighted = probs.map((p, j) => {
      const v = row(V, DV, l, h, j), out = new Float64Array(DV);
      for (let d = 0; d < DV; d++) { out[d] = p * v[d]; z[d] += out[d]; }
      return out;
    });
    return { q, dots, scores, shift, exps, total, probs, weighted, z };
  }
  function drawFormula() {
    const root = $("formula");
    while (root.firstChild) root.removeChild(root.firstChild);
    const i = state.query;
    if (i === null) {
      root.appendChild(el("p", "Click a token (a heatmap row or a token in the lines view) to see how its output is computed.", "muted"));
      return;
    }
    const l = state.layer, h = state.head, a = attentionFor(l, h, i);
    const model = row(Z, DV, l, h, i), modelW = row(W, T, l, h, i);
    let diffZ = 0, diffW = 0;
    for (let d = 0; d < DV; d++) diffZ = Math.max(diffZ, Math.abs(a.z[d] - model[d]));
    for (let j = 0; j < T; j++) diffW = Math.max(diffW, Math.abs(a.probs[j] - modelW[j]));
    const standard = Math.abs(data.scale - 1 / Math.sqrt(DK)) < 1e-6 * data.scale;
    const scaleName = standard ? "1/√d_k" : "scale";
    const expName = a.shift ? "exp(s_j − " + fmt(a.shift) + ")" : "exp(s_j)";

    root.appendChild(el("p", "Layer " + l + ", head " + h + ", query token " + i + " " + JSON.stringify(tokens[i]) +
      ". d_k = " + DK + ", " + (standard ? "1/√d_k = " + fmt(data.scale) : "scale = " + fmt(data.scale) +
      " (the model's; 1/√d_k would be " + fmt(1 / Math.sqrt(DK)) + ")") + "; " +
      (data.causal ? "causal: keys after the query are masked (−∞)." : "bidirectional: every key is visible.") +
      " Over all " + T + " tokens, special ones included, as in the model." +
      (kvShare(h) ? " Keys and values: " + kvShare(h) : "")));
    root.appendChild(el("div", "1. the query q_" + i + " = " + fmtVector(a.q, 6), "vector"));
    root.appendChild(el("div", "2–6. each key k_j: score s_j = q·k_j × " + scaleName + " (+ mask), softmax over j; " +
      "7. each weight times its value", "vector"));
    const table = el("table"), head = el("tr");
    for (const name of ["j", "token", "k_j (" + DK + " dims)", "q·k_j", "× " + scaleName, "mask", expName,
      "a_j", "v_j (" + DV + " dims)", "a_j · v_j"]) head.appendChild(el("th", name));
    table.appendChild(head);
    const best = a.probs.indexOf(Math.max(...a.probs));
    for (let j = 0; j < T; j++) {
      const tr = el("tr"), masked = a.scores[j] === -Infinity;
      tr.className = (masked ? "masked " : "") + (special[j] ? "special " : "") + (j === best ? "top" : "");
      const cells = [String(j), shortToken(tokens[j], 16), fmtVector(row(K, DK, l, h, j), 2), fmt(a.dots[j]),
        masked ? "—" : fmt(a.scores[j]), masked ? "−∞" : "0", fmt(a.exps[j]), fmt(a.probs[j]),
        fmtVector(row(V, DV, l, h, j), 2), fmtVector(a.weighted[j], 2)];
      cells.forEach((text, c) => tr.appendChild(el("td", text, c === 1 ? "tok" : "")));
      tr.children[1].title = tokens[j];
      table.appendChild(tr);
    }
    root.appendChild(table);
    const sumA = a.probs.reduce((x, y) => x + y, 0);
    root.appendChild(el("div", "Σ_j " + expName + " = " + fmt(a.total) + ";  a_j = " + expName + " / Σ;  Σ_j a_j = " +
      sumA.toFixed(6), "vector"));
    root.appendChild(el("div", "8. z_" + i + " = Σ_j a_j · v_j = " + fmtVector(a.z, 6), "vector"));
    root.appendChild(el("div", "   the model's head output = " + fmtVector(model, 6), "vector"));
    const ok = diffZ < CHECK_TOLERANCE && diffW < CHECK_TOLERANCE;
    const check = el("div", "check: max |z − z_model| = " + diffZ.toExponential(2) + ", max |a − a_model| = " +
      diffW.toExponential(2) + (ok ? "  ✓ (< " + CHECK_TOLERANCE + ")" : "  ✗ (tolerance " + CHECK_TOLERANCE + ")"),
    "check " + (ok ? "ok" : "bad"));
    check.id = "formula-check";
    check.dataset.maxAbsDiff = String(diffZ);
    check.dataset.maxAbsDiffWeights = String(diffW);
    root.appendChild(check);
  }

  // ---- state changes ---------------------------------------------------------------------------
  function redraw() {
    $("layer-select").value = String(state.layer);
    $("head-select").value = String(state.head);
    $("kv-note").textContent = kvShare(state.head);
    drawHeatmap(); drawLines(); drawFormula(); drawAblation();
    document.querySelectorAll("#overview canvas").forEach((tile) => {
      tile.className = Number(tile.dataset.layer) === state.layer && Number(tile.dataset.head) === state.head ? "current" : "";
    });
  }
  function select(l, h) { state.layer = l; state.head = h; redraw(); }
  function selectQuery(i) { state.query = i; redraw(); }

  function init() {
    const summary = (data.model_name ? data.model_name + " · " : "") + L + " layers × " + H + " heads" +
      (HKV < H ? " (" + HKV + " key/value heads)" : "") + " · " + T +
      " tokens · d_k = " + DK + (data.causal ? " · causal" : " · bidirectional");
    $("summary").textContent = summary;
    for (let l = 0; l < L; l++) $("layer-select").appendChild(Object.assign(el("option", String(l)), { value: String(l) }));
    for (let h = 0; h < H; h++) $("head-select").appendChild(Object.assign(el("option", String(h)), { value: String(h) }));
    $("layer-select").addEventListener("change", (e) => select(Number(e.target.value), state.head));
    $("head-select").addEventListener("change", (e) => select(state.layer, Number(e.target.value)));
    $("special-mode").addEventListener("change", (e) => {
      state.mode = e.target.value;
      $("special-note").textContent = state.mode === "hide"
        ? "Special tokens removed; each row rescaled to sum to 1 over the rest (the formula panel still shows the model's full softmax)."
        : state.mode === "grey" ? "Rows and columns of special tokens greyed; weights unchanged." : "";
      drawOverview(); redraw();
    });
    const bar = $("legend-bar").getContext("2d");
    for (let x = 0; x < 160; x++) {
      const [red, green, blue] = colour(x / 159);
      bar.fillStyle = "rgb(" + red + "," + green + "," + blue + ")";
      bar.fillRect(x, 0, 1, 10);
    }
    if (!special.some(Boolean)) $("special-mode").disabled = true;
    drawOverview(); redraw();
    document.body.dataset.ready = "true";
  }
  init();
})();
