"""The numba kernels of the sparse products of ``ttfs_lab.functional.sparse`` (its docstring and docs/method.md
section 8 say what they compute and why this way). Arrays are flat; a CSR "by position" of an NCHW spike tensor
holds, per (image, position), the channels and values of its nonzeros. Inner loops are slices over contiguous
memory so that LLVM vectorizes them; the options are those of ``ttfs_lab.functional.kernels``.
"""

from __future__ import annotations

import numpy as np

from ttfs_lab.functional import kernels

if kernels.AVAILABLE:  # the kernels (numba, compiled on first use, cached)
    from numba import njit, prange

    from ttfs_lab.functional.kernels import JIT

    _INNER = dict(cache=True, boundscheck=False, fastmath=False, inline="always")

    @njit(**JIT)
    def csr_of_planes(x, N, C, HW):  # pragma: no cover - compiled
        """Nonzeros of x ``[N, C, HW]`` (NCHW) grouped by position (n, p): ptr ``[N*HW + 1]`` (int64), channel
        idx (int32, increasing within a position) and values."""
        ptr = np.zeros(N * HW + 1, np.int64)
        for n in prange(N):
            for c in range(C):
                base = (n * C + c) * HW
                row = x[base:base + HW]
                cnt = ptr[n * HW + 1:(n + 1) * HW + 1]
                for p in range(HW):
                    if row[p] != 0:
                        cnt[p] += 1
        for i in range(N * HW):
            ptr[i + 1] += ptr[i]
        idx = np.empty(ptr[N * HW], np.int32)
        val = np.empty(ptr[N * HW], x.dtype)
        for n in prange(N):
            cursor = ptr[n * HW:(n + 1) * HW].copy()
            for c in range(C):
                base = (n * C + c) * HW
                for p in range(HW):
                    v = x[base + p]
                    if v != 0:
                        k = cursor[p]
                        idx[k] = c
                        val[k] = v
                        cursor[p] = k + 1
        return ptr, idx, val

    @njit(**_INNER)
    def _axpy(dst, src, v, L):  # pragma: no cover - compiled
        for o in range(L):
            dst[o] += v * src[o]

    @njit(**_INNER)
    def _axpy4(dst, s0, s1, s2, s3, a0, a1, a2, a3, L):  # pragma: no cover - compiled
        """dst += a0 s0 + a1 s1 + a2 s2 + a3 s3: four rows into one, the destination read and written once."""
        for o in range(L):
            dst[o] += (a0 * s0[o] + a1 * s1[o]) + (a2 * s2[o] + a3 * s3[o])

    @njit(**_INNER)
    def _out_row(iy, ph, dy, sh, Ho):  # pragma: no cover - compiled
        """The output row that input row iy feeds through kernel row dy, or -1."""
        ty = iy + ph - dy
        if ty < 0 or ty % sh != 0 or ty // sh >= Ho:
            return -1
        return ty // sh

    @njit(**_INNER)
    def _x_span(ix, pw, KW, Wo):  # pragma: no cover - compiled
        """Stride 1 along x: the outputs lo..hi that input column ix feeds, and the offset of their first tap in
        the KW-reversed kernel row (taps j = ox - (ix + pw - KW + 1))."""
        first = ix + pw - KW + 1
        return max(0, first), min(Wo - 1, ix + pw), max(0, first) - first

    @njit(**JIT)
    def conv_scatter_forward(ptr, idx, val, N, C, H, W, Wk, O, KH, KW, sh, sw, ph, pw, Ho, Wo, bias, out):  # pragma: no cover
        """out ``[N, O, Ho, Wo]`` = conv2d of the sparse input (CSR by position) with Wk ``[KH, C, KW, O]`` (KW
        reversed), + bias (length 0: none). Per image, each nonzero adds its weight rows into the outputs it
        feeds (NHWC, local). With stride 1 along x those outputs and their weight rows are contiguous (one product
        per kernel row instead of KW), and the nonzeros of one position, which feed the same outputs, go in fours
        (the accumulator read and written once for four)."""
        for n in prange(N):
            loc = np.zeros(Ho * Wo * O, out.dtype)
            for iy in range(H):
                for ix in range(W):
                    p = (n * H + iy) * W + ix
                    k0, k1 = ptr[p], ptr[p + 1]
                    for dy in range(KH if k1 > k0 else 0):
                        oy = _out_row(iy, ph, dy, sh, Ho)
                        if oy < 0:
                            continue
                        if sw == 1:
                            lo, hi, off = _x_span(ix, pw, KW, Wo)
                            L = (hi - lo + 1) * O
                            if L <= 0:
                                continue
                            dst = loc[(oy * Wo + lo) * O:(oy * Wo + hi + 1) * O]
                            row = KW * O
                            k = k0
                            while k + 4 <= k1:
                                b0, b1 = (dy * C + idx[k]) * row + off * O, (dy * C + idx[k + 1]) * row + off * O
                                b2, b3 = (dy * C + idx[k + 2]) * row + off * O, (dy * C + idx[k + 3]) * row + off * O
                                _axpy4(dst, Wk[b0:b0 + L], Wk[b1:b1 + L], Wk[b2:b2 + L], Wk[b3:b3 + L],
                                       val[k], val[k + 1], val[k + 2], val[k + 3], L)
                                k += 4
                            for j in range(k, k1):
                                b = (dy * C + idx[j]) * row + off * O
                                _axpy(dst, Wk[b:b + L], val[j], L)
                        else:
                            for k in range(k0, k1):
                                for dx in range(KW):
                                    tx = ix + pw - dx
                                    if tx < 0 or tx % sw != 0 or tx // sw >= Wo:
                                        continue
                                    wb = ((dy * C + idx[k]) * KW + KW - 1 - dx) * O
                                    ob = (oy * Wo + tx // sw) * O
                                    _axpy(loc[ob:ob + O], Wk[wb:wb + O], val[k], O)
            for o in range(O):
                dst = out[(n * O + o) * Ho * Wo:(n * O + o + 1) * Ho * Wo]
                b = bias[o] if bias.shape[0] > 0 else 0.0
                for q in range(Ho * Wo):
                    dst[q] = loc[q * O + o] + b

    @njit(**_INNER)
    def _by_channel(ptr, idx, val, p0, HW, C, cptr):  # pragma: no cover - compiled
        """The nonzeros of positions p0 .. p0 + HW - 1 (one image) regrouped by channel (counting sort): positions
        (relative to p0) and values, channel c's at ``cptr[c]:cptr[c + 1]``."""
        k0, k1 = ptr[p0], ptr[p0 + HW]
        for c in range(C + 1):
            cptr[c] = 0
        for k in range(k0, k1):
            cptr[idx[k] + 1] += 1
        for c in range(C):
            cptr[c + 1] += cptr[c]
        cursor = cptr[:C].copy()
        cpos = np.empty(k1 - k0, np.int64)
        cval = np.empty(k1 - k0, val.dtype)
        for p in range(HW):
            for k in range(ptr[p0 + p], ptr[p0 + p + 1]):
                j = cursor[idx[k]]
                cpos[j] = p
                cval[j] = val[k]
                cursor[idx[k]] = j + 1
        return cpos, cval

    @njit(**JIT)
    def conv_plane_wgrad(ptr, idx, val, N, C, H, W, G, O, KH, KW, sh, sw, ph, pw, Ho, Wo, dW):  # pragma: no cover
        """dW ``[chunks, KH*C*KW*O]`` (``[KH, C, KW, O]``, KW reversed; summed over chunks by the caller): the
        weight gradient for the output gradient G ``[N, O, Ho, Wo]``, one partial sum per chunk of images. Per
        image, its gradient transposed to NHWC (stays in L2) and its nonzeros regrouped by channel: every nonzero
        of channel c adds v times the gradient rows it fed into ``dW[dy, c]``; away from the x borders (stride 1)
        that is the whole kernel row, the same destination for all of them, so they go in fours."""
        chunks = dW.shape[0]
        per = (N + chunks - 1) // chunks
        row = KW * O
        for ch in prange(chunks):
            d = dW[ch]
            gl = np.empty(Ho * Wo * O, G.dtype)
            cptr = np.empty(C + 1, np.int64)
            pend = np.empty(4, np.int64)
            pval = np.empty(4, G.dtype)
            for n in range(ch * per, min(N, (ch + 1) * per)):
                for o in range(O):
                    src = G[(n * O + o) * Ho * Wo:(n * O + o + 1) * Ho * Wo]
                    for q in range(Ho * Wo):
                        gl[q * O + o] = src[q]
                cpos, cval = _by_channel(ptr, idx, val, n * H * W, H * W, C, cptr)
                for c in range(C):
                    for dy in range(KH if cptr[c + 1] > cptr[c] else 0):
                        dst = d[(dy * C + c) * row:(dy * C + c + 1) * row]
                        m = 0
                        for k in range(cptr[c], cptr[c + 1]):
                            oy = _out_row(cpos[k] // W, ph, dy, sh, Ho)
                            if oy < 0:
                                continue
                            ix = cpos[k] % W
                            if sw == 1:
                                lo, hi, off = _x_span(ix, pw, KW, Wo)
                                L = (hi - lo + 1) * O
                                g = (oy * Wo + lo) * O
                                if 0 < L < row:  # at a border: part of the kernel row
                                    _axpy(dst[off * O:off * O + L], gl[g:g + L], cval[k], L)
                                elif L == row:
                                    pend[m] = g
                                    pval[m] = cval[k]
                                    m += 1
                                    if m == 4:
                                        g0, g1, g2, g3 = pend[0], pend[1], pend[2], pend[3]
                                        _axpy4(dst, gl[g0:g0 + row], gl[g1:g1 + row], gl[g2:g2 + row],
                                               gl[g3:g3 + row], pval[0], pval[1], pval[2], pval[3], row)
                                        m = 0
                            else:
                                for dx in range(KW):
                                    tx = ix + pw - dx
                                    if tx < 0 or tx % sw != 0 or tx // sw >= Wo:
                                        continue
                                    g = (oy * Wo + tx // sw) * O
                                    wb = (KW - 1 - dx) * O
                                    _axpy(dst[wb:wb + O], gl[g:g + O], cval[k], O)
                        for j in range(m):
                            _axpy(dst, gl[pend[j]:pend[j] + row], pval[j], row)

    @njit(**JIT)
    def csr_of_rows(x, R, K):  # pragma: no cover - compiled
        """Nonzeros of x ``[R, K]`` by row: ptr ``[R + 1]``, column idx (int32, increasing), values."""
        ptr = np.zeros(R + 1, np.int64)
        for r in prange(R):
            row = x[r * K:(r + 1) * K]
            cnt = 0
            for k in range(K):
                if row[k] != 0:
                    cnt += 1
            ptr[r + 1] = cnt
        for r in range(R):
            ptr[r + 1] += ptr[r]
        idx = np.empty(ptr[R], np.int32)
        val = np.empty(ptr[R], x.dtype)
        for r in prange(R):
            j = ptr[r]
            row = x[r * K:(r + 1) * K]
            for k in range(K):
                v = row[k]
                if v != 0:
                    idx[j] = k
                    val[j] = v
                    j += 1
        return ptr, idx, val

    @njit(**JIT)
    def csc_transposed_times_dense(ptr_t, idx_t, val_t, K, G, O, out):  # pragma: no cover - compiled
        """out ``[O, K]`` = (X^T @ G)^T for X ``[R, K]`` given by columns (CSC) and G ``[R, O]``: column i of out from
        column i's nonzeros, in blocks of 256 outputs so that G's block stays in cache across columns."""
        BLK = 256
        for c0 in range(0, O, BLK):
            n = min(O, c0 + BLK) - c0
            for i in prange(K):
                acc = np.zeros(n, out.dtype)
                for q in range(ptr_t[i], ptr_t[i + 1]):
                    v = val_t[q]
                    grow = G[idx_t[q] * O + c0:idx_t[q] * O + c0 + n]
                    for j in range(n):
                        acc[j] += v * grow[j]
                for j in range(n):
                    out[(c0 + j) * K + i] = acc[j]

    @njit(**JIT)
    def csc_times_dense(ptr_t, idx_t, val_t, K, Bm, O, R, bias, out):  # pragma: no cover - compiled
        """out ``[R, O]`` = X @ Bm (+ bias, length 0: none) for X ``[R, K]`` given by columns (CSC) and Bm ``[K, O]``:
        column blocks of 256 outputs in parallel, each reading its block of Bm once, in order, and adding each
        row of it into the output rows of its column's nonzeros (a block of the output stays in L2)."""
        blk = 256
        nblk = (O + blk - 1) // blk
        for bi in prange(nblk):
            c0 = bi * blk
            n = min(O, c0 + blk) - c0
            for r in range(R):
                dst = out[r * O + c0:r * O + c0 + n]
                for j in range(n):
                    dst[j] = bias[c0 + j] if bias.shape[0] > 0 else 0.0
            for i in range(K):
                brow = Bm[i * O + c0:i * O + c0 + n]
                for q in range(ptr_t[i], ptr_t[i + 1]):
                    v = val_t[q]
                    r = idx_t[q]
                    dst = out[r * O + c0:r * O + c0 + n]
                    for j in range(n):
                        dst[j] += v * brow[j]

    @njit(cache=True, boundscheck=False, nogil=True)
    def csr_transpose(ptr, idx, val, R, K):  # pragma: no cover - compiled
        """The CSR of the transpose ``[K, R]`` of a CSR ``[R, K]`` (row indices increasing within a column)."""
        ptr_t = np.zeros(K + 1, np.int64)
        for j in range(ptr[R]):
            ptr_t[idx[j] + 1] += 1
        for k in range(K):
            ptr_t[k + 1] += ptr_t[k]
        cursor = ptr_t[:K].copy()
        idx_t = np.empty(ptr[R], np.int32)
        val_t = np.empty(ptr[R], val.dtype)
        for r in range(R):
            for j in range(ptr[r], ptr[r + 1]):
                k = idx[j]
                q = cursor[k]
                idx_t[q] = r
                val_t[q] = val[j]
                cursor[k] = q + 1
        return ptr_t, idx_t, val_t
