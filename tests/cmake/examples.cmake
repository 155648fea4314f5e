# The examples run as tests, with their output checked.
add_test(NAME example_seed COMMAND $<TARGET_FILE:dsc_example_seed_example> WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(example_seed PROPERTIES
  PASS_REGULAR_EXPRESSION "engine initialised: world_size=1 train_batch_size=8 micro_batch=4 gradient_accumulation_steps=2.*pass 1: input shape \\(8, 10\\).*pass 1: backward and step done \\(accumulation boundary: no, global_steps=0, micro_steps=1\\).*pass 2: backward and step done \\(accumulation boundary: yes, global_steps=1, micro_steps=2\\).*weights updated: yes")
add_test(NAME example_train_gpt COMMAND $<TARGET_FILE:dsc_example_train_gpt> WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(example_train_gpt PROPERTIES PASS_REGULAR_EXPRESSION "train_gpt: 30 optimizer steps, loss [0-9.]+ -> [0-9.]+")
