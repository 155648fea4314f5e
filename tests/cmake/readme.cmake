# README.md's configs (configs/): named paths exist, each passes `dsc config check`, and the
# config printed in the README is the shipped file (tests/readme_configs.sh). The README's
# commands themselves run, in order, under scripts/readme-check.sh (on a fresh root).
add_test(NAME readme_configs COMMAND sh ${PROJECT_SOURCE_DIR}/tests/readme_configs.sh $<TARGET_FILE:dsc_cli>
         WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
set_tests_properties(readme_configs PROPERTIES PASS_REGULAR_EXPRESSION
  "named in README: configs/d6.json.*valid: configs/ds_zero2.json.*README's d6 config = configs/d6.json.*README-CONFIGS-OK")
