"""The window's panels: each shows one thing and says what the user wants (`recipe_name()`,
`processes_wanted()`, `recent(n)`), never hands out its widgets to the window.

setup_panel (recipe, model, prompts, algorithm, the generated settings form: config_form),
reward_editor (with code_editor), dashboard (curves; series holds their buffers),
samples_view, runs_view.
"""
