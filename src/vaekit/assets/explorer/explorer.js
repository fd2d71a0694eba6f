// vaekit explorer: the page's panels (one per model). Everything runs from file://: no fetch, no
// module import, no network. window.vaekit is the handle tests and benchmarks read.
"use strict";

(function () {
  const spec = JSON.parse(document.getElementById("vaekit-spec").textContent);
  const weights = VaekitNets.decodeBlob(document.getElementById("vaekit-weights").textContent);
  const COLOURS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
  const MAP = 300; // map side, CSS pixels
  const el = (tag, attrs, parent) => {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) (k === "text" ? (e.textContent = v) : e.setAttribute(k, v));
    if (parent) parent.appendChild(e);
    return e;
  };
  const view = (r) => weights.subarray(r[0], r[0] + r[1]);

  // A standard normal draw (Box-Muller) from a small seeded generator, so a page's samples repeat.
  function rng(seed) {
    let s = seed >>> 0;
    const u = () => { s = (s + 0x6d2b79f5) >>> 0; let t = s; t = Math.imul(t ^ (t >>> 15), t | 1);
      t ^= t + Math.imul(t ^ (t >>> 7), t | 61); return (((t ^ (t >>> 14)) >>> 0) + 0.5) / 4294967296; };
    return { u, normal: () => Math.sqrt(-2 * Math.log(u())) * Math.cos(2 * Math.PI * u()) };
  }

  class Panel {
    constructor(m, index, root) {
      this.m = m; this.index = index; this.D = m.latent_dim; this.F = m.shape.reduce((a, b) => a * b, 1);
      this.label = 0; this.z = Float64Array.from(m.dims.center); this.pixels = null; this.q = null;
      this.a = null; this.b = null; this.random = rng(1234 + index); this.pending = false;
      this.isImage = m.shape.length === 3;
      this.build(root);
      this.drawMap();
      this.setCode(this.z);
    }

    // -- the nets ------------------------------------------------------------------------------
    decode(z, label) {
      const y = VaekitNets.run(this.m.decoder.ops, Float64Array.from(z), { weights, classes: this.m.num_classes, label: label ?? this.label });
      return Float32Array.from(y);
    }
    encode(x, label) {
      const h = VaekitNets.run(this.m.encoder.ops, Float64Array.from(x), { weights, classes: this.m.num_classes, label: label ?? this.label });
      const D = this.D;
      return { mean: Array.from(h.subarray(0, D)), logvar: this.m.encoder.logvar ? Array.from(h.subarray(D, 2 * D)) : null };
    }

    // -- code space <-> map --------------------------------------------------------------------
    toMap(z) {
      const pr = this.m.map.projection;
      if (!pr) return [z[0], z[1]];
      let u = 0, v = 0;
      for (let d = 0; d < this.D; d++) { u += (z[d] - pr.mean[d]) * pr.axes[0][d]; v += (z[d] - pr.mean[d]) * pr.axes[1][d]; }
      return [u, v];
    }
    fromMap(u, v) {
      const pr = this.m.map.projection;
      if (!pr) return [u, v];
      return pr.mean.map((mu, d) => mu + u * pr.axes[0][d] + v * pr.axes[1][d]);
    }
    px(u, v) { const e = this.m.map.extent; return [(u - e[0]) / (e[1] - e[0]) * MAP, (1 - (v - e[2]) / (e[3] - e[2])) * MAP]; }
    unpx(x, y) { const e = this.m.map.extent; return [e[0] + x / MAP * (e[1] - e[0]), e[2] + (1 - y / MAP) * (e[3] - e[2])]; }

    // -- state ---------------------------------------------------------------------------------
    setCode(z, from) {
      this.z = Float64Array.from(z);
      if (from !== "slider") this.syncSliders();
      this.schedule();
    }
    code() { return Array.from(this.z); }
    image() { return this.pixels ? Array.from(this.pixels) : null; }
    schedule() {
      if (this.pending) return;
      this.pending = true;
      requestAnimationFrame(() => this.render());
    }
    render() {
      this.pending = false;
      const t0 = performance.now();
      this.pixels = this.decode(this.z);
      this.lastDecodeMs = performance.now() - t0;
      this.paint(this.out, this.pixels, 8);
      this.drawMarker();
      this.status.textContent = `decoded in ${this.lastDecodeMs.toFixed(1)} ms`;
      window.vaekit.renders += 1;
      if (window.vaekit.firstImageMs === null) window.vaekit.firstImageMs = performance.now();
    }

    // -- painting ------------------------------------------------------------------------------
    paint(canvas, values, scale) {
      const [lo, hi] = this.m.display;
      const g = canvas.getContext("2d");
      if (!this.isImage) { // a vector: one bar per feature
        g.clearRect(0, 0, canvas.width, canvas.height);
        const w = canvas.width / this.F;
        g.fillStyle = "#1f77b4";
        for (let i = 0; i < this.F; i++) {
          const f = Math.min(1, Math.max(0, (values[i] - lo) / (hi - lo)));
          g.fillRect(i * w, canvas.height * (1 - f), Math.max(1, w - 1), canvas.height * f);
        }
        return;
      }
      const [C, H, W] = this.m.shape;
      const img = g.createImageData(W, H);
      const rgb = C === 3 || C === 4; // grey, RGB(A); any other channel count is drawn as its mean in grey, as vaekit's PNGs
      for (let p = 0; p < H * W; p++) {
        let mean = 0;
        if (!rgb) for (let ch = 0; ch < C; ch++) mean += values[ch * H * W + p] / C;
        for (let ch = 0; ch < 3; ch++) {
          const v = rgb ? values[ch * H * W + p] : mean;
          img.data[4 * p + ch] = Math.round(255 * Math.min(1, Math.max(0, (v - lo) / (hi - lo))));
        }
        img.data[4 * p + 3] = 255;
      }
      const tmp = this.tmp || (this.tmp = el("canvas", { width: W, height: H }));
      tmp.getContext("2d").putImageData(img, 0, 0);
      g.imageSmoothingEnabled = false;
      g.drawImage(tmp, 0, 0, W * scale, H * scale);
    }
    drawMap() {
      const g = this.mapBase.getContext("2d");
      g.fillStyle = "#fff"; g.fillRect(0, 0, MAP, MAP);
      const pts = this.m.map.points, labels = this.m.map.labels;
      for (let i = 0; i < pts.length; i++) {
        const [x, y] = this.px(pts[i][0], pts[i][1]);
        g.fillStyle = labels ? COLOURS[labels[i] % 10] : "#555";
        g.fillRect(x - 1, y - 1, 2, 2);
      }
    }
    drawMarker() {
      const g = this.mapTop.getContext("2d");
      g.clearRect(0, 0, MAP, MAP);
      if (this.q && this.q.logvar) this.drawEllipse(g);
      const [x, y] = this.px(...this.toMap(this.z));
      g.strokeStyle = "#000"; g.lineWidth = 2;
      g.beginPath(); g.moveTo(x - 8, y); g.lineTo(x + 8, y); g.moveTo(x, y - 8); g.lineTo(x, y + 8); g.stroke();
    }
    drawEllipse(g) { // q(z|x) projected on the map: 1 and 2 standard deviations
      const pr = this.m.map.projection, v = this.q.logvar.map(Math.exp);
      const A = pr ? pr.axes : [[1, 0], [0, 1]];
      const c = [[0, 0], [0, 0]];
      for (let d = 0; d < this.D; d++) for (let i = 0; i < 2; i++) for (let j = 0; j < 2; j++) c[i][j] += A[i][d] * A[j][d] * v[d];
      const tr = c[0][0] + c[1][1], det = c[0][0] * c[1][1] - c[0][1] * c[0][1];
      const l1 = tr / 2 + Math.sqrt(Math.max(0, tr * tr / 4 - det)), l2 = Math.max(0, tr - l1);
      const angle = Math.atan2(l1 - c[0][0], c[0][1] || 1e-12);
      const [cx, cy] = this.px(...this.toMap(this.q.mean));
      const e = this.m.map.extent, sx = MAP / (e[1] - e[0]), sy = MAP / (e[3] - e[2]);
      g.strokeStyle = "rgba(214,39,40,0.9)"; g.lineWidth = 1.5;
      for (const k of [1, 2]) {
        g.beginPath();
        for (let t = 0; t <= 64; t++) {
          const a = (2 * Math.PI * t) / 64, p = k * Math.sqrt(l1) * Math.cos(a), q = k * Math.sqrt(l2) * Math.sin(a);
          const u = p * Math.cos(angle) - q * Math.sin(angle), w = p * Math.sin(angle) + q * Math.cos(angle);
          (t ? g.lineTo : g.moveTo).call(g, cx + u * sx, cy - w * sy);
        }
        g.stroke();
      }
    }

    // -- the interactions ----------------------------------------------------------------------
    mapAt(fx, fy) { // a point of the map, as fractions of its width and height
      const [u, v] = this.unpx(fx * MAP, fy * MAP);
      this.q = null;
      this.setCode(this.fromMap(u, v), "map");
    }
    syncSliders() {
      for (const s of this.sliders) s.input.value = this.z[s.d];
    }
    sample() {
      const s = this.m.sampler;
      if (!s) return;
      const r = this.random;
      let z;
      if (s.kind === "two-stage") {
        z = this.secondStage(Array.from({ length: s.inner_dim }, r.normal));
      } else {
        const w = view(s.logits), top = Math.max(...w), p = Array.from(w, (l) => Math.exp(l - top));
        let pick = r.u() * p.reduce((a, b) => a + b), k = 0;
        while (k < p.length - 1 && (pick -= p[k]) > 0) k++;
        const loc = view(s.loc).subarray(k * this.D, (k + 1) * this.D), e = Array.from({ length: this.D }, r.normal);
        z = Float64Array.from(loc);
        if (s.scale) { const sc = view(s.scale).subarray(k * this.D, (k + 1) * this.D); for (let d = 0; d < this.D; d++) z[d] += sc[d] * e[d]; }
        else { const L = view(s.scale_tril).subarray(k * this.D * this.D, (k + 1) * this.D * this.D);
          for (let i = 0; i < this.D; i++) for (let j = 0; j <= i; j++) z[i] += L[i * this.D + j] * e[j]; }
      }
      this.q = null;
      this.setCode(z, "sample");
    }
    secondStage(u) { // the two-stage sampler: u ~ N(0, I) -> the code, the mean of the second VAE's decoder
      return Array.from(VaekitNets.run(this.m.sampler.decoder.ops, Float64Array.from(u), { weights, classes: 0, label: 0 }));
    }
    interpolate(t) {
      if (!this.a || !this.b) return;
      const za = this.a.code, zb = this.b.code, lin = this.mode.value === "linear";
      let wa = 1 - t, wb = t;
      if (!lin) { // the great circle between the two codes (viz.interpolate_codes)
        let dot = 0, na = 0, nb = 0;
        for (let d = 0; d < this.D; d++) { dot += za[d] * zb[d]; na += za[d] * za[d]; nb += zb[d] * zb[d]; }
        const om = Math.acos(Math.min(1, Math.max(-1, dot / Math.max(Math.sqrt(na * nb), 1e-12))));
        if (Math.abs(om) >= 1e-6) { wa = Math.sin((1 - t) * om) / Math.sin(om); wb = Math.sin(t * om) / Math.sin(om); }
      }
      this.q = null;
      this.setCode(za.map((a, d) => wa * a + wb * zb[d]), "interpolate");
    }
    pick(i) {
      const g = this.m.gallery, x = view(g.images).subarray(i * this.F, (i + 1) * this.F);
      const entry = { index: g.indices[i], code: this.encode(x, g.labels ? g.labels[i] : this.label).mean };
      if (!this.a || this.b) { this.a = entry; this.b = null; } else { this.b = entry; }
      this.pair.textContent = `A: test #${this.a.index}` + (this.b ? `, B: test #${this.b.index}` : " (pick B)");
      if (this.b) this.interpolate(Number(this.t.value));
    }
    drawn() { return this.ink ? Array.from(this.ink, (v) => this.m.display[0] + v * (this.m.display[1] - this.m.display[0])) : null; }
    posterior() { return this.q; }
    encodeDrawing() {
      const x = this.drawn();
      this.q = this.encode(x);
      this.setCode(this.q.mean, "draw");
    }
    stroke(x0, y0, x1, y1) { // ink along a segment, in image pixels, with a soft brush of radius 1.3
      const [C, H, W] = this.m.shape, r = Math.max(1.3, W / 20);
      const steps = Math.max(1, Math.ceil(Math.hypot(x1 - x0, y1 - y0) * 2));
      for (let s = 0; s <= steps; s++) {
        const cx = x0 + ((x1 - x0) * s) / steps, cy = y0 + ((y1 - y0) * s) / steps;
        for (let y = Math.floor(cy - r - 1); y <= cy + r + 1; y++) for (let x = Math.floor(cx - r - 1); x <= cx + r + 1; x++) {
          if (x < 0 || y < 0 || x >= W || y >= H) continue;
          const v = Math.min(1, Math.max(0, r + 0.5 - Math.hypot(x + 0.5 - cx, y + 0.5 - cy)));
          for (let c = 0; c < C; c++) this.ink[(c * H + y) * W + x] = Math.max(this.ink[(c * H + y) * W + x], v);
        }
      }
    }

    // -- the page ------------------------------------------------------------------------------
    build(root) {
      const m = this.m, box = el("section", { class: "panel", id: `panel-${this.index}` }, root);
      el("h2", { text: m.title }, box);
      el("p", { class: "note", text: m.note }, box);
      const row = el("div", { class: "row" }, box);
      const mapBox = el("div", { class: "map" }, row);
      el("div", { class: "cap", text: m.map.projection ? `test codes (${m.map.points.length}), projected on their first two principal axes` : `test codes (${m.map.points.length})` }, mapBox);
      const stack = el("div", { class: "stack", style: `width:${MAP}px;height:${MAP}px` }, mapBox);
      this.mapBase = el("canvas", { width: MAP, height: MAP, class: "map-base" }, stack);
      this.mapTop = el("canvas", { width: MAP, height: MAP, class: "map-top" }, stack);
      const onMap = (ev) => {
        if (ev.type === "pointermove" && ev.pointerType === "touch" && !ev.buttons) return;
        const r = this.mapTop.getBoundingClientRect();
        const fx = (ev.clientX - r.left) / r.width, fy = (ev.clientY - r.top) / r.height;
        for (const p of spec.linked ? window.vaekit.panels : [this]) p.mapAt(fx, fy);
      };
      this.mapTop.addEventListener("pointermove", onMap);
      this.mapTop.addEventListener("pointerdown", onMap);

      const mid = el("div", { class: "out" }, row);
      el("div", { class: "cap", text: "decoded: the mean of p(x|z)" }, mid);
      const side = this.isImage ? 8 : 0;
      this.out = el("canvas", this.isImage ? { width: m.shape[2] * side, height: m.shape[1] * side, class: "image" }
        : { width: 300, height: 160, class: "image" }, mid);
      this.status = el("div", { class: "status" }, mid);
      const tools = el("div", { class: "tools" }, mid);
      if (m.num_classes) {
        el("label", { text: "label " }, tools);
        this.labelPick = el("select", { class: "label-pick" }, tools);
        for (let c = 0; c < m.num_classes; c++) el("option", { value: c, text: String(c) }, this.labelPick);
        this.labelPick.addEventListener("change", () => { this.label = Number(this.labelPick.value); this.schedule(); });
      }
      const sampleBtn = el("button", { class: "sample", text: m.sampler ? `sample (${m.sampler.name})` : "no prior to sample from" }, tools);
      if (!m.sampler) sampleBtn.disabled = true;
      sampleBtn.addEventListener("click", () => this.sample());

      const sl = el("div", { class: "sliders" }, box);
      el("div", { class: "cap", text: "one slider per latent dimension, the active ones first" }, sl);
      this.sliders = m.dims.order.map((d, i) => {
        const line = el("div", { class: "slider" + (m.dims.active[i] ? "" : " inactive") }, sl);
        const info = m.dims.kl ? `KL ${m.dims.kl[i].toFixed(2)}` : `var ${m.dims.activity[i].toPrecision(2)}`;
        el("span", { text: `z${d} ${info}` }, line);
        const c = m.dims.center[d], s = m.dims.scale[i];
        const input = el("input", { type: "range", min: c - 3 * s, max: c + 3 * s, step: s / 50, "data-dim": d }, line);
        input.addEventListener("input", () => { const z = Array.from(this.z); z[d] = Number(input.value); this.q = null; this.setCode(z, "slider"); });
        return { d, input };
      });

      const row2 = el("div", { class: "row" }, box);
      const inter = el("div", { class: "interp" }, row2);
      el("div", { class: "cap", text: "pick two test images, then slide between their codes" }, inter);
      const gal = el("div", { class: "gallery" }, inter);
      const g = m.gallery, [C, H, W] = this.isImage ? m.shape : [1, 1, 1];
      for (let i = 0; i < g.indices.length; i++) {
        const c = el("canvas", this.isImage ? { width: W * 2, height: H * 2, class: "thumb", "data-i": i, title: `test #${g.indices[i]}` }
          : { width: 60, height: 30, class: "thumb", "data-i": i }, gal);
        this.paint(c, view(g.images).subarray(i * this.F, (i + 1) * this.F), 2);
        c.addEventListener("click", () => this.pick(i));
      }
      this.pair = el("div", { class: "status", text: "A: none" }, inter);
      const ctl = el("div", {}, inter);
      this.mode = el("select", { class: "mode" }, ctl);
      for (const md of ["linear", "slerp"]) el("option", { value: md, text: md }, this.mode);
      this.t = el("input", { type: "range", min: 0, max: 1, step: 0.01, value: 0.5, class: "t" }, ctl);
      this.t.addEventListener("input", () => this.interpolate(Number(this.t.value)));
      this.mode.addEventListener("change", () => this.interpolate(Number(this.t.value)));

      if (this.isImage) {
        const draw = el("div", { class: "draw" }, row2);
        el("div", { class: "cap", text: "draw: the page encodes it and shows q(z|x) on the map" }, draw);
        this.pad = el("canvas", { width: W * 6, height: H * 6, class: "pad" }, draw);
        this.ink = new Float64Array(this.F);
        let last = null;
        const at = (ev) => { const r = this.pad.getBoundingClientRect(); return [(ev.clientX - r.left) / r.width * W, (ev.clientY - r.top) / r.height * H]; };
        this.pad.addEventListener("pointerdown", (ev) => { last = at(ev); this.stroke(...last, ...last); this.paint(this.pad, this.drawn(), 6); this.encodeDrawing(); });
        this.pad.addEventListener("pointermove", (ev) => {
          if (!last || !ev.buttons) return;
          const p = at(ev); this.stroke(...last, ...p); last = p; this.paint(this.pad, this.drawn(), 6); this.encodeDrawing();
        });
        window.addEventListener("pointerup", () => { last = null; });
        const clear = el("button", { class: "clear", text: "clear" }, draw);
        clear.addEventListener("click", () => { this.ink.fill(0); this.q = null; this.paint(this.pad, this.drawn(), 6); this.drawMarker(); });
        this.paint(this.pad, this.drawn(), 6);
      }
    }
  }

  window.vaekit = { spec, panels: [], renders: 0, firstImageMs: null, ready: false };
  const root = document.getElementById("panels");
  spec.models.forEach((m, i) => window.vaekit.panels.push(new Panel(m, i, root)));
  window.vaekit.ready = true;
})();
