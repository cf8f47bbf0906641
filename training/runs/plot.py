"""The loss curve of a run as PNG bytes (matplotlib, headless)."""

from __future__ import annotations

import io


def loss_curve_png(records: list[dict], title: str = "") -> bytes:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in records]
    loss = [r["loss"] for r in records]
    fig, ax = plt.subplots(figsize=(7, 3.5), dpi=100)
    ax.plot(steps, loss, lw=0.8, alpha=0.5, label="loss")
    if len(loss) >= 5:  # the raw diffusion loss is noisy (random timesteps): show an EMA too
        ema, smooth = loss[0], []
        for v in loss:
            ema = 0.9 * ema + 0.1 * v
            smooth.append(ema)
        ax.plot(steps, smooth, lw=1.6, label="EMA 0.9")
    for r in records:
        if r.get("resumed_from") is not None:
            ax.axvline(r["resumed_from"], color="grey", ls="--", lw=0.8)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return buf.getvalue()
