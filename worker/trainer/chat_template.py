"""ChatML with `{% generation %}` markers around assistant turns, so that
`apply_chat_template(..., return_assistant_tokens_mask=True)` can mask the prompt.

The trainer uses it when a base ships no chat template; the tiny local model ships it.
Standard library only: the platform imports it too.
"""

CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{% if message['role'] == 'assistant' %}"
    "{{ '<|im_start|>assistant\n' }}"
    "{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}"
    "{{ '\n' }}"
    "{% else %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>\n' }}"
    "{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
