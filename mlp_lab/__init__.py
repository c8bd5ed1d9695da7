"""mlp_lab: the dashboard's logic, importable without a browser or the canvas component.

* ``shared_data``: MNIST loaded once per server process, read-only, shared by all sessions.
* ``state``: one user's lab (model, trainer, background run, results); no Streamlit.
* ``figures``: every chart as a pure function, arrays in, Plotly figure out.
* ``drawing``: canvas pixels to the 28x28 image the network receives.
* ``session``: the Streamlit glue (per-session lab, sidebar status, toasts).
"""
