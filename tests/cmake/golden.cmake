# The PyTorch golden-file reader (tests/common/golden.{h,c}), used by test_ops_golden and
# test_gpt_golden; the files it reads are written by tools/gen_golden_*.py.
target_sources(dsc_testutil PRIVATE ${PROJECT_SOURCE_DIR}/tests/common/golden.c)
