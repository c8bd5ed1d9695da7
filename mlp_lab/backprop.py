"""The backprop view's words and equations: what one training step computes, layer by layer,
with the shapes of the current model. Pure (no Streamlit): LaTeX strings in, out."""

from __future__ import annotations

OPTIMIZER_UPDATE = {
    "sgd": r"W \leftarrow W - \eta\,\frac{\partial L}{\partial W}",
    "momentum": r"v \leftarrow \beta v + \frac{\partial L}{\partial W},\qquad W \leftarrow W - \eta\, v",
    "adam": (r"m \leftarrow \beta_1 m + (1-\beta_1)\,g,\quad v \leftarrow \beta_2 v + (1-\beta_2)\,g^2,"
             r"\quad W \leftarrow W - \eta\,\frac{\hat m}{\sqrt{\hat v}+\epsilon}"),
}


def equations(model, batch: int) -> dict[str, list[str]]:
    """LaTeX lines for the forward pass, the backward pass and the update, with shapes.

    ``model``: a NotebookNet or DenseMLP; ``batch``: N, the images in the batch."""
    n = batch
    if model.kind == "notebook":
        output = "softmax" if model.loss == "cross_entropy" else r"\mathrm{relu}"
        forward = [
            rf"H_1 = \mathrm{{relu}}(W_1 X + B_1) \quad ({n}\times 128 \times 28)"
            r"\;=\; \mathrm{relu}\big((128\times28)\,(28\times28) + (128\times28)\big)",
            rf"H_2 = \mathrm{{relu}}(W_2 H_1 + B_2) \quad ({n}\times 10 \times 28)",
            rf"\hat y = {output}(H_2\, w_3) \quad ({n}\times 10):\ (10\times28)\,(28\times1)",
        ]
        loss = (r"L = \frac{1}{N}\sum_n \big\| \hat y_n - y_n \big\|^2" if model.loss == "mse"
                else r"L = -\frac{1}{N}\sum_n \log \hat y_{n,\,\text{true digit}}")
        backward = [
            r"\delta = \partial L / \partial \text{scores} \quad (N\times10)",
            r"\frac{\partial L}{\partial w_3} = \sum_n H_{2,n}^{\top}\,\delta_n \quad (28\times1)",
            r"\Delta_2 = (\delta\, w_3^{\top}) \odot [H_2>0] \quad (N\times10\times28),\qquad "
            r"\frac{\partial L}{\partial W_2} = \sum_n \Delta_{2,n} H_{1,n}^{\top} \quad (10\times128)",
            r"\Delta_1 = (W_2^{\top}\Delta_2) \odot [H_1>0] \quad (N\times128\times28),\qquad "
            r"\frac{\partial L}{\partial W_1} = \sum_n \Delta_{1,n} X_n^{\top} \quad (128\times28)",
        ]
    else:
        sizes = model.sizes  # (784, h1, ..., 10)
        last = len(sizes) - 1
        forward = []
        for i in range(1, last + 1):
            prev = "X" if i == 1 else f"h_{{{i - 1}}}"
            if i < last:
                forward.append(rf"h_{{{i}}} = \mathrm{{{model.activation}}}({prev}\,W_{{{i}}} + b_{{{i}}})"
                               rf"\quad ({n}\times{sizes[i - 1]})\,({sizes[i - 1]}\times{sizes[i]}) "
                               rf"\to ({n}\times{sizes[i]})")
            else:
                forward.append(rf"\hat y = \mathrm{{softmax}}({prev}\,W_{{{i}}} + b_{{{i}}})"
                               rf"\quad ({n}\times{sizes[i]})")
        loss = (r"L = -\frac{1}{N}\sum_n \log \hat y_{n,\,\text{true digit}}"
                if model.loss == "cross_entropy" else r"L = \frac{1}{N}\sum_n \|\hat y_n - y_n\|^2")
        backward = [rf"\delta_{{{last}}} = \partial L/\partial z_{{{last}}}"
                    + (r" = (\hat y - y)/N" if model.loss == "cross_entropy" else "")
                    + rf"\quad ({n}\times10)"]
        for i in range(last, 0, -1):
            prev = "X" if i == 1 else f"h_{{{i - 1}}}"
            line = (rf"\frac{{\partial L}}{{\partial W_{{{i}}}}} = {prev}^{{\top}}\,\delta_{{{i}}}"
                    rf"\quad ({sizes[i - 1]}\times{n})\,({n}\times{sizes[i]}) \to "
                    rf"({sizes[i - 1]}\times{sizes[i]})")
            if i > 1:
                line += (rf",\qquad \delta_{{{i - 1}}} = (\delta_{{{i}}} W_{{{i}}}^{{\top}}) \odot "
                         rf"\mathrm{{{model.activation}}}'(z_{{{i - 1}}})")
            backward.append(line)
    return {"forward": forward, "loss": [loss], "backward": backward}
