"""Train: pick a learning rate and a number of steps, press Train, watch the curves live."""

import numpy as np
import streamlit as st

from mlp_lab import figures
from mlp_lab.session import (FIGURES, POLL_SECONDS, WAITING_POLL_SECONDS, digest, fmt_loss, get_lab, guarded,
                             last_run_notice, show_chart, waiting_text)
from mlp_lab.choices import DEFAULT_STEPS, LR_OPTIONS, STEP_OPTIONS, nearest_option
from mlp_lab.config import MAX_SECONDS_PER_RUN

lab = get_lab()


def _train() -> None:
    st.session_state.pop("last_notice", None)
    message = lab.start(st.session_state["train_steps"], st.session_state["train_lr"])
    if message:
        st.session_state["train_message"] = message


def _stop() -> None:
    lab.stop()


def _lr_changed() -> None:
    message = lab.set_lr(st.session_state["train_lr"])  # also during a run: the next step uses it
    if message:
        st.session_state["train_message"] = message


def _steps_changed() -> None:
    st.session_state["steps_choice"] = st.session_state["train_steps"]  # survives page switches
    lab.set_train_steps(st.session_state["train_steps"])  # and a reload (saved with the lab)


if "train_lr" not in st.session_state:  # widget state is dropped when the page is left
    st.session_state["train_lr"] = nearest_option(lab.lr, LR_OPTIONS)
if "train_steps" not in st.session_state:
    st.session_state["train_steps"] = st.session_state.get("steps_choice", DEFAULT_STEPS)

st.title("Train")
st.caption(
    "**What am I looking at?** Each training step shows the network a few images, measures how "
    "wrong its answers are (the *loss*) and nudges every weight a little to be less wrong. "
    "Watch the loss fall and the accuracy rise. Pressing Train again continues with the same "
    "weights.")
running = lab.running
st.markdown(f"**Model:** {lab.model.describe()} · {lab.choice.describe_training()} · "
            "change it on the Model page")
if lab.model.kind == "notebook":
    st.caption("The notebook's network learns slowly: after 2,000 steps it still guesses at chance "
               "(about 10% right); 20,000 steps reach about 60%. The Dense MLP passes 97% in "
               "2,000 steps.")

c1, c2 = st.columns(2)
c1.select_slider(
    "Learning rate", options=LR_OPTIONS, key="train_lr", on_change=_lr_changed,
    format_func=lambda v: f"{v:g}",
    help="How big each nudge to the weights is. Too small: learning crawls. Too big: the loss "
         "jumps around or explodes. You can change it while training runs. The scale is "
         "logarithmic: each notch is about 2x bigger.")
c2.select_slider(
    "Steps", options=STEP_OPTIONS, key="train_steps", on_change=_steps_changed,
    format_func=lambda v: f"{v:,}",
    help="How many training steps the next press of Train runs (the notebook ran 2,000). "
         f"A run also ends after {MAX_SECONDS_PER_RUN:g} seconds so the server stays quick.")
b1, b2, _ = st.columns([1, 1, 6])
b1.button("Train", type="primary", on_click=_train, disabled=running, width="stretch",
          help="Train for the chosen number of steps, in the background: you can switch "
               "pages meanwhile.")
b2.button("Stop", on_click=_stop, disabled=not running, width="stretch",
          help="End the run after the current step. The weights learned so far are kept.")

message = st.session_state.pop("train_message", None)
if message:
    st.warning(message)


# While the run waits for a trainer nothing but its place in line changes: refresh less
# often (the sidebar reruns the page when it starts training).
@st.fragment(run_every=(WAITING_POLL_SECONDS if lab.waiting else POLL_SECONDS) if running else None)
@guarded
def live_training(polling: bool) -> None:
    status = lab.status()
    snap = lab.snapshot(include_params=False)
    history = snap.history
    if status.waiting:
        st.info(waiting_text(status), icon=":material/hourglass_top:")
    elif status.preparing:
        st.info("Getting the training images ready the way this model reads them. The server does "
                "this once for everybody: a few seconds, then training starts.",
                icon=":material/hourglass_top:")
    elif status.running:
        fraction = status.run_done / max(status.run_steps, 1)
        st.progress(min(fraction, 1.0),
                    text=f"Training: step {status.run_done:,} of {status.run_steps:,} in this run")
    notice = last_run_notice(st.session_state.get("last_notice"), lab.trainer_id)
    if notice and not status.running:
        kind, text = notice
        (st.success if kind == "success" else st.error if kind == "error" else st.info)(text)
        if status.step:
            st.download_button("Download this model (.npz)", data=lab.to_bytes, file_name=lab.file_name(),
                               mime="application/octet-stream", on_click="ignore", key="train_download",
                               help="The trained weights and settings as a file. Your model is also "
                                    "kept on this server: it comes back when you reload the page.")
    if status.untrained:
        st.info("This network has not learned anything yet: its weights are random. "
                "Press **Train**.")
    m1, m2, m3, m4 = st.columns(4)
    m1.metric("Steps trained", f"{status.step:,}",
              help="Training steps since the weights were made (or loaded).")
    m2.metric("Loss", fmt_loss(status.last_loss),
              help="How wrong the network was on the last batch of images: 0 would be perfect.")
    val = f"{history.val_accuracy[-1]:.1%}" if history.val_accuracy else "–"
    m3.metric("Validation accuracy", val,
              help="Share of 1,000 images the network never trains on that it gets right.")
    speed = status.samples_per_second
    m4.metric("Speed (images/s)", f"{speed:,.0f}" if speed else "–",
              help="How many training images per second this run gets through.")
    x_max = (snap.step - status.run_done + status.run_steps) if status.running else snap.step
    revision = f"{lab.trainer_id}-{status.step - status.run_done}"  # a zoom lasts until the next run
    log_y = st.toggle("Log scale for the loss", key="train_log_y", persist_state="session",
                      help="A log scale spreads out small values, so you can still see the loss "
                           "improving when it is already close to 0.")
    # Rebuilt only when the curves changed (FigureCache): a run waiting for a trainer, or
    # a finished one, refreshes without paying for Plotly again.
    curves = digest(np.asarray(history.steps, dtype=np.int64),
                    np.asarray(history.losses, dtype=np.float64))
    show_chart(st, FIGURES.get(("loss", curves, log_y, x_max, revision), lambda: figures.loss_figure(
        history.steps, history.losses, log_y=log_y, x_max=x_max, revision=f"{revision}-{log_y}")),
        key="loss_chart")
    accuracy = digest(np.asarray(history.val_steps, dtype=np.int64),
                      np.asarray(history.val_accuracy, dtype=np.float64))
    show_chart(st, FIGURES.get(("accuracy", accuracy, x_max, revision), lambda: figures.accuracy_figure(
        history.val_steps, history.val_accuracy, x_max=x_max, revision=revision)),
        key="accuracy_chart")
    if polling and not status.running:
        st.rerun()  # the run ended: re-enable Train, show the toast, stop polling


live_training(running)
