// vaekit explorer: runs the programs written by vaekit/webnets.py on one example at a time.
// Activations are Float64Array (doubles), so the page rounds less than PyTorch's float32 does;
// weights are the float32 values PyTorch holds, read from one little-endian blob.
"use strict";

const VaekitNets = (function () {
  function decodeBlob(text) {
    if (Uint8Array.fromBase64) return new Float32Array(Uint8Array.fromBase64(text.trim()).buffer); // 4x faster where it exists
    const s = atob(text.trim());
    const bytes = new Uint8Array(s.length);
    for (let i = 0; i < s.length; i++) bytes[i] = s.charCodeAt(i);
    return new Float32Array(bytes.buffer);
  }

  // erf to 1.2e-7 (Numerical Recipes' erfc, Chebyshev fit), for the exact GELU.
  function erf(x) {
    const z = Math.abs(x), t = 1 / (1 + 0.5 * z);
    const r = t * Math.exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 +
      t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 + t * (-0.82215223 + t * 0.17087277)))))))));
    return x >= 0 ? 1 - r : r - 1;
  }
  const sigmoid = (v) => 1 / (1 + Math.exp(-v));
  const ACTS = {
    relu: (v) => (v > 0 ? v : 0),
    tanh: Math.tanh,
    elu: (v) => (v > 0 ? v : Math.expm1(v)),
    gelu: (v) => 0.5 * v * (1 + erf(v / Math.SQRT2)),
    sigmoid: sigmoid,
  };

  function linear(w, b, n, m, x) { // W (m, n) row-major: y = W x + b
    const y = new Float64Array(m);
    for (let o = 0; o < m; o++) {
      let s0 = 0, s1 = 0, s2 = 0, s3 = 0, i = 0;
      const r = o * n;
      for (; i + 3 < n; i += 4) {
        s0 += w[r + i] * x[i]; s1 += w[r + i + 1] * x[i + 1];
        s2 += w[r + i + 2] * x[i + 2]; s3 += w[r + i + 3] * x[i + 3];
      }
      for (; i < n; i++) s0 += w[r + i] * x[i];
      y[o] = b[o] + ((s0 + s1) + (s2 + s3));
    }
    return y;
  }

  function conv(op, w, b, x) { // nn.Conv2d: w (cout, cin, k, k)
    const [ci, H, W] = op.in, [co, Ho, Wo] = op.out, k = op.k, s = op.stride, p = op.pad;
    const y = new Float64Array(co * Ho * Wo);
    for (let o = 0; o < co; o++) {
      for (let oy = 0; oy < Ho; oy++) {
        for (let ox = 0; ox < Wo; ox++) {
          let acc = b[o];
          for (let c = 0; c < ci; c++) {
            const wb = (o * ci + c) * k * k, xb = c * H * W;
            for (let ky = 0; ky < k; ky++) {
              const iy = oy * s - p + ky;
              if (iy < 0 || iy >= H) continue;
              for (let kx = 0; kx < k; kx++) {
                const ix = ox * s - p + kx;
                if (ix >= 0 && ix < W) acc += w[wb + ky * k + kx] * x[xb + iy * W + ix];
              }
            }
          }
          y[(o * Ho + oy) * Wo + ox] = acc;
        }
      }
    }
    return y;
  }

  function deconv(op, w, b, x) { // nn.ConvTranspose2d: w (cin, cout, k, k); each input scatters k x k
    const [ci, H, W] = op.in, [co, Ho, Wo] = op.out, k = op.k, s = op.stride, p = op.pad;
    const y = new Float64Array(co * Ho * Wo);
    for (let o = 0; o < co; o++) y.fill(b[o], o * Ho * Wo, (o + 1) * Ho * Wo);
    for (let c = 0; c < ci; c++) {
      for (let iy = 0; iy < H; iy++) {
        for (let ix = 0; ix < W; ix++) {
          const v = x[(c * H + iy) * W + ix];
          if (v === 0) continue;
          for (let o = 0; o < co; o++) {
            const wb = (c * co + o) * k * k, yb = o * Ho * Wo;
            for (let ky = 0; ky < k; ky++) {
              const oy = iy * s - p + ky;
              if (oy < 0 || oy >= Ho) continue;
              for (let kx = 0; kx < k; kx++) {
                const ox = ix * s - p + kx;
                if (ox >= 0 && ox < Wo) y[yb + oy * Wo + ox] += v * w[wb + ky * k + kx];
              }
            }
          }
        }
      }
    }
    return y;
  }

  // The mean of p(x|z) from P parameter blocks of n values each (likelihoods.py, family by family).
  function mean(op, x) {
    const P = op.params, n = x.length / P, y = new Float64Array(n);
    const lik = op.likelihood;
    if (lik === "bernoulli") {
      for (let i = 0; i < n; i++) y[i] = sigmoid(x[i]);
    } else if (lik === "continuous_bernoulli") { // sigmoid(l)/tanh(l/2) - 1/l; its series below |l| = 0.25
      for (let i = 0; i < n; i++) {
        const l = x[i];
        y[i] = Math.abs(l) < 0.25 ? 0.5 + l / 12 - (l * l * l) / 720 : sigmoid(l) / Math.tanh(l / 2) - 1 / l;
      }
    } else if (lik.startsWith("gaussian")) {
      for (let i = 0; i < n; i++) y[i] = x[i];
    } else if (lik === "discretized_logistic" || lik === "discretized_logistic_mixture") {
      const M = lik === "discretized_logistic" ? 1 : op.components;
      const off = lik === "discretized_logistic" ? [-1, 0, 1] : [0, M, 2 * M]; // weight, loc, log-scale blocks
      const wts = new Float64Array(M), inv = new Float64Array(M), loc = new Float64Array(M);
      for (let i = 0; i < n; i++) { // E[x] = (1/255) sum_k P(x >= k/255), bin edge by bin edge
        let top = -Infinity;
        for (let m = 0; m < M; m++) {
          wts[m] = off[0] < 0 ? 0 : x[(off[0] + m) * n + i];
          top = Math.max(top, wts[m]);
          loc[m] = x[(off[1] + m) * n + i];
          inv[m] = Math.exp(-Math.max(x[(off[2] + m) * n + i], op.min_log_scale));
        }
        let z = 0;
        for (let m = 0; m < M; m++) { wts[m] = Math.exp(wts[m] - top); z += wts[m]; }
        let total = 0;
        for (let k = 1; k < 256; k++) {
          const edge = (k - 0.5) / 255;
          for (let m = 0; m < M; m++) total += (wts[m] / z) * sigmoid((loc[m] - edge) * inv[m]);
        }
        y[i] = total / 255;
      }
    } else {
      throw new Error("unknown likelihood " + lik);
    }
    return y;
  }

  function run(ops, x, ctx) {
    for (const op of ops) {
      const v = (r) => ctx.weights.subarray(r[0], r[0] + r[1]);
      switch (op.op) {
        case "linear": x = linear(v(op.w), v(op.b), op.in, op.out, x); break;
        case "act": { const f = ACTS[op.fn]; const y = new Float64Array(x.length); for (let i = 0; i < x.length; i++) y[i] = f(x[i]); x = y; break; }
        case "gated": {
          const a = linear(v(op.w), v(op.b), op.in, op.out, x), g = linear(v(op.gw), v(op.gb), op.in, op.out, x);
          for (let i = 0; i < a.length; i++) a[i] *= sigmoid(g[i]);
          x = a; break;
        }
        case "residual": { const h = run(op.ops, x, ctx); for (let i = 0; i < h.length; i++) h[i] += x[i]; x = h; break; }
        case "conv": x = conv(op, v(op.w), v(op.b), x); break;
        case "deconv": x = deconv(op, v(op.w), v(op.b), x); break;
        case "label": {
          const y = new Float64Array(x.length + ctx.classes);
          y.set(x); y[x.length + ctx.label] = 1; x = y; break;
        }
        case "mean": x = mean(op, x); break;
        default: throw new Error("unknown op " + op.op);
      }
    }
    return x;
  }

  return { decodeBlob, run, erf };
})();
