"""The local model-serving process: `python -m worker.inference --model <folder>`.

It loads one base model, attaches LoRA adapters on request and answers OpenAI-style chat
completions, with the same HTTP endpoints a vLLM server offers. No Django import here.
"""
