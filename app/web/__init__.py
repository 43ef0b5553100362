"""``mum-web``: the Gradio web app and its HTTP API (``server``), built on the engine and the exports."""
