"""NumPy vs Keras: the same network trained by mlp_core and by TensorFlow/Keras, from the
same starting weights; the loss curves overlaid, time per epoch, accuracy, and one batch's
gradients compared. TensorFlow runs in a child process (mlp_lab.keras_compare), never in
the server."""

import streamlit as st

from mlp_lab import teaching_figures as tf
from mlp_lab.keras_compare import (BATCH, EPOCH_OPTIONS, HIDDEN, TRAIN_SIZES, get_jobs, per_epoch,
                                   speed_sentence)
from mlp_lab.session import get_lab, guarded, show_chart

AGREE = 1e-4  # largest gradient difference, relative to the gradient's size, called "the same"

get_lab()
jobs = get_jobs()

st.title("NumPy vs Keras")
st.caption(
    "**What am I looking at?** One network (784 → 128 → 64 → 10, the same for everyone, not "
    "your model from the other pages) trained twice from the very same random start: once by "
    "MLP Lab's own code, written with NumPy, and once by "
    "TensorFlow/Keras, the library professionals use. If our maths is right, both learn the "
    "same way, and on one batch of images both compute the same gradients (the directions "
    "in which every weight should move), up to rounding.")
c1, c2, c3 = st.columns([2, 1, 1])
c1.select_slider("Training images", TRAIN_SIZES, value=2000, key="keras_n",
                 format_func=lambda v: f"{v:,}",
                 help="How many MNIST images both train on (the same ones, in batches of "
                      f"{BATCH}). Fewer is quicker.")
c2.select_slider("Epochs", EPOCH_OPTIONS, value=2, key="keras_epochs",
                 help="An epoch is one pass over all the training images. Each epoch is timed "
                      "separately.")
key = (st.session_state["keras_n"], st.session_state["keras_epochs"])
c3.button("Run both", type="primary", disabled=jobs.busy,
          on_click=lambda: jobs.request(*key),
          help="Trains both networks in the background (TensorFlow takes about 10 s to load). "
               "One comparison runs at a time on the server and results are shared, so the "
               "next student with the same settings sees them at once.")


@st.fragment(run_every=1.0 if jobs.busy else None)
@guarded
def results_view(polling: bool) -> None:
    if jobs.busy and jobs.current is not None:
        n, epochs = jobs.current
        if jobs.waiting:
            st.info(f"Waiting for a free trainer: the server's trainers are all busy with "
                    f"students' runs. The comparison ({n:,} images, {epochs} epoch(s)) starts "
                    "by itself when one is free.", icon=":material/hourglass_top:")
        else:
            st.info(f"Training both on {n:,} images for {epochs} epoch(s)… now: {jobs.stage}.",
                    icon=":material/hourglass_top:")
    error = jobs.errors.get(key)
    if error and not jobs.busy:
        if jobs.missing_tensorflow:
            st.error(f"The Keras comparison needs TensorFlow, which is not installed on the "
                     f"server (`pip install tensorflow`). ({error})")
        else:
            st.error(f"The Keras comparison could not run ({error}). The server's console "
                     "has the details; press Run both to try again.")
    result = jobs.result(key)
    if result is None:
        if not jobs.busy:
            st.info("Press **Run both** to train the two side by side.")
    else:
        st.header(f"Results: {result.n_train:,} images, {result.epochs} epoch(s)")
        left, right = st.columns(2)
        for column, side in ((left, result.ours), (right, result.keras)):
            with column, st.container(border=True):
                st.markdown(f"**{side.name}**")
                m1, m2 = st.columns(2)
                m1.metric("Seconds per epoch", f"{per_epoch(side, result.epochs):.2f}",
                          help="Time of one pass over the training images: the average over "
                               "the epochs after the first, when there are several (Keras' first "
                               "epoch also prepares its compiled training step).")
                m2.metric("Accuracy on unseen images", f"{side.val_accuracy[-1]:.1%}",
                          help="Share of 1,000 images neither network trained on that it "
                               "answers correctly, after the last epoch.")
        st.markdown(speed_sentence(result) + " Both end at about the same accuracy: they learned "
                    "the same thing.")
        g1, g2 = st.columns(2)
        show_chart(g1, tf.keras_loss_figure(result), key="keras_curves")
        show_chart(g2, tf.keras_time_figure(result), key="keras_times")
        st.caption("The two loss curves lie on top of each other: the same network learns at the "
                   "same pace. They are not identical because each library shuffles the images "
                   "in its own order. Keras' first epoch also includes TensorFlow preparing its "
                   "compiled training step.")

        st.header("Do both compute the same gradients?")
        worst = max(result.grad_rel.values())
        if worst < AGREE:
            st.success(f"**Yes.** On the same {BATCH} images, from the same weights, the largest "
                       f"difference is {worst:.1e} of the gradient's size: that is the rounding of "
                       "32-bit numbers (about 1e-7, that is 0.0000001), not a mistake.", icon=":material/check_circle:")
        else:
            st.warning(f"**No**: a difference of {worst:.1e} of the gradient's size is more than "
                       "rounding. One of the two computes something else.")
        st.caption(f"Loss on that batch: NumPy {result.loss_ours:.6f}, Keras {result.loss_keras:.6f}. "
                   "In the plot, every dot is one number of the gradient: if both agree, all dots "
                   "sit on the dashed line. The table gives, for every weight array, the largest "
                   "difference between the two gradients.")
        p1, p2 = st.columns([3, 2])
        show_chart(p1, tf.keras_gradient_figure(result), key="keras_gradients")
        p2.dataframe([{"array": name, "largest difference": f"{result.grad_max_abs[name]:.2e}",
                       "relative to the largest gradient": f"{result.grad_rel[name]:.2e}"}
                      for name in result.grad_max_abs], hide_index=True)
        st.caption(f"TensorFlow {result.tf_version}, one thread each; network "
                   f"784-{HIDDEN[0]}-{HIDDEN[1]}-10, Adam lr 0.001, batch {BATCH}. TensorFlow runs "
                   "in a separate process, so it never slows down the rest of MLP Lab.")
    if polling and not jobs.busy:
        st.rerun()


results_view(jobs.busy)
