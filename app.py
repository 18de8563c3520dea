"""SP-Mamba Studio: `python app.py` starts the Gradio demo (the UI lives in spmamba/demo/)."""

from spmamba.demo.app import main

if __name__ == "__main__":
    main()
