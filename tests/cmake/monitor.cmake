# Monitors and the tools around them (issue 9, docs/monitor.md): TensorBoard interop, and the
# `dsc estimate`, `dsc plot` and `dsc doctor` command lines. tests/unit/test_monitor.c and
# tests/unit/test_estimate.c are registered like every unit test.

# ---- TensorBoard's own reader on dsc's event files ----------------------------------------
# Without python3 or the tensorboard package the test prints "SKIP: <reason>" and returns 77.
add_executable(tb_interop_helper ${PROJECT_SOURCE_DIR}/tests/interop/tb_interop_helper.c)
target_link_libraries(tb_interop_helper PRIVATE dsc)
find_program(DSC_PYTHON3 NAMES python3)
if(DSC_PYTHON3)
  add_test(NAME interop_tensorboard
           COMMAND ${DSC_PYTHON3} ${PROJECT_SOURCE_DIR}/tests/interop/check_tensorboard.py
                   $<TARGET_FILE:tb_interop_helper> ${CMAKE_BINARY_DIR}/interop_tensorboard
           WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
else()
  add_test(NAME interop_tensorboard COMMAND sh -c "echo 'SKIP: python3 not found'; test \"\$CI\" != true || exit 1; exit 77")
endif()
set_tests_properties(interop_tensorboard PROPERTIES SKIP_RETURN_CODE 77 TIMEOUT 120)

# ---- command lines ------------------------------------------------------------------------
# The subcommands exist once tools/dsc_main.c registers them; until then each test reports
# SKIP (exit 77). Editing dsc_main.c re-runs the configuration.
set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS ${PROJECT_SOURCE_DIR}/tools/dsc_main.c
             ${PROJECT_SOURCE_DIR}/src/engine/engine.c)
file(READ ${PROJECT_SOURCE_DIR}/tools/dsc_main.c DSC_MON_MAIN)
set(DSC_MON_DSC $<TARGET_FILE:dsc_cli>)

# dsc_mon_cli_test(NAME COMMAND_NAME SHELL_COMMAND PASS_REGEX)
function(dsc_mon_cli_test name cmd script regex)
  if(DSC_MON_MAIN MATCHES "dsc_cmd_${cmd}")
    add_test(NAME ${name} COMMAND sh -c "${script}" WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
    set_tests_properties(${name} PROPERTIES PASS_REGULAR_EXPRESSION "${regex}" TIMEOUT 300
                         ENVIRONMENT "OMP_NUM_THREADS=1;OMP_WAIT_POLICY=passive;OPENBLAS_NUM_THREADS=1")
  else()
    add_test(NAME ${name} COMMAND sh -c "echo 'SKIP: dsc ${cmd} is not registered in tools/dsc_main.c yet'; exit 77")
    set_tests_properties(${name} PROPERTIES SKIP_RETURN_CODE 77)
  endif()
endfunction()

# dsc estimate for GPT-2 124M (d12) on 8 ranks prints DeepSpeed's ZeRO-2 figures, computed here
# by hand from spec §5.9: Psi = V*C + 1024*C + 12*(12*C^2 + 13*C) + 2*C with C = 768, V = 50257,
# = 124,439,808. Without offload, per GPU 2*Psi + int(18*Psi/8) = 528,869,184 bytes = 0.49 GiB,
# per CPU Psi*4*8*1.5 = 5,973,110,784 bytes = 5.56 GiB; with offload per GPU 2*Psi = 0.23 GiB.
math(EXPR DSC_MON_PSI "50257*768 + 1024*768 + 12*(12*768*768 + 13*768) + 2*768")
math(EXPR DSC_MON_Z2_GPU "2*${DSC_MON_PSI} + (18*${DSC_MON_PSI})/8")
# ZeRO-3 without offload: LL + int(18*Psi/8) with LL = 4 * the largest layer (wte, V*C).
math(EXPR DSC_MON_Z3_GPU "4*50257*768 + (18*${DSC_MON_PSI})/8")
dsc_mon_cli_test(cli_estimate_d12 estimate "${DSC_MON_DSC} estimate --model d12 --world-size 8"
  "124,439,808 parameters.*\n0 +no .*\n2 +yes .*\n3 +no +[0-9.]+ MiB +0 B .*\n3 +yes .*5\\.56GB \\|   0\\.23GB \\| offload_optimizer=cpu \n    5\\.56GB \\|   0\\.49GB \\| offload_optimizer=none\n.*ZeRO-2 per GPU without offload: ${DSC_MON_Z2_GPU} bytes.*ZeRO-3 per GPU without offload: ${DSC_MON_Z3_GPU} bytes")
dsc_mon_cli_test(cli_estimate_tiny_bf16 estimate
  "${DSC_MON_DSC} estimate --model tiny --world-size 2 --precision bf16 --micro-batch 4 --layers 3"
  "tiny: 3 layers, 4 heads, 64 wide, vocab 65, context 32.*bf16 with fp32 gradient accumulation.*1 +yes .*offload_param=none, offload_optimizer=none, zero_init=0")
dsc_mon_cli_test(cli_estimate_bad_model estimate "${DSC_MON_DSC} estimate --model d99 2>&1; echo exit=$?"
  "unknown model 'd99'.*exit=2")

# dsc plot: a PNG of a run directory's csv files; its first 24 bytes are the signature and the
# IHDR of a 640x420 image; with python3, zlib inflates it and checks every chunk CRC.
set(DSC_MON_RUN ${CMAKE_BINARY_DIR}/cli_plot_run)
set(DSC_MON_PNG_CHECK "true")
if(DSC_PYTHON3)
  set(DSC_MON_PNG_CHECK "${DSC_PYTHON3} ${PROJECT_SOURCE_DIR}/tests/interop/check_png.py ${DSC_MON_RUN}/plot.png 640 420")
endif()
dsc_mon_cli_test(cli_plot plot
  "rm -rf ${DSC_MON_RUN} && mkdir -p ${DSC_MON_RUN} && printf 'step,train_loss\\r\\n0,4.5\\r\\n16,3.25\\r\\n32,2.5\\r\\n48,2.25\\r\\n' > ${DSC_MON_RUN}/Train_Samples_train_loss.csv && printf 'step,lr\\r\\n16,0.001\\r\\n32,0.002\\r\\n48,0.0015\\r\\n' > ${DSC_MON_RUN}/Train_Samples_lr.csv && ${DSC_MON_DSC} plot ${DSC_MON_RUN} --width 640 --height 420 && od -An -tx1 -N24 ${DSC_MON_RUN}/plot.png | tr -d '\\n' && echo && ${DSC_MON_PNG_CHECK}"
  "wrote .*plot.png \\(640x420\\).* 89 50 4e 47 0d 0a 1a 0a 00 00 00 0d 49 48 44 52 00 00 02 80 00 00 01 a4")
dsc_mon_cli_test(cli_plot_missing plot "${DSC_MON_DSC} plot ${CMAKE_BINARY_DIR}/no_such_run 2>&1; echo exit=$?"
  "no_such_run is not a directory.*exit=1")

# dsc doctor: the sections, and each problem with its fix.
# OMP_NUM_THREADS unset is a problem only when several ranks share the node (issue 21: a
# healthy single-process machine exits 0); `dsc report` is the same command.
dsc_mon_cli_test(cli_doctor_omp_unset doctor "env -u OMP_NUM_THREADS OMPI_COMM_WORLD_LOCAL_SIZE=2 ${DSC_MON_DSC} doctor; echo exit=$?"
  "AVX2 (yes|no), FMA (yes|no), F16C (yes|no), AVX-512F (yes|no), AVX-512 BF16 (yes|no).*OpenMP.*problem: OMP_NUM_THREADS is not set.*the 2 ranks of this node.*fix: export OMP_NUM_THREADS=[0-9]+.*OpenBLAS.*threads.*MPI.*(Open MPI|MPICH).*exit=1")
dsc_mon_cli_test(cli_doctor_omp_unset_one_rank doctor "env -u OMP_NUM_THREADS ${DSC_MON_DSC} report | grep -c 'problem: OMP_NUM_THREADS'; env -u OMP_NUM_THREADS ${DSC_MON_DSC} report"
  "^0\n.*doctor.*note: OMP_NUM_THREADS is not set: this one process uses one OpenMP thread per CPU")
dsc_mon_cli_test(cli_doctor_oversubscribed doctor "OMP_NUM_THREADS=100000 ${DSC_MON_DSC} doctor; echo exit=$?"
  "problem: OMP_NUM_THREADS=100000 x 1 rank on this node = 100000 threads > [0-9]+ available CPUs.*fix: export OMP_NUM_THREADS=[0-9]+.*exit=1")
dsc_mon_cli_test(cli_monitor_help doctor
  "${DSC_MON_DSC} estimate --help && ${DSC_MON_DSC} plot --help && ${DSC_MON_DSC} doctor --help"
  "usage: dsc estimate.*usage: dsc plot RUN_DIR.*usage: dsc doctor")

# ---- end to end: dsc train with csv_monitor and tensorboard, then dsc plot ------------------
# Runs once the engine creates its monitors (src/engine/engine.c calls dsc__engine_monitor_new).
file(READ ${PROJECT_SOURCE_DIR}/src/engine/engine.c DSC_MON_ENGINE)
set(DSC_MON_TRAIN ${CMAKE_BINARY_DIR}/cli_train_monitor)
file(WRITE ${CMAKE_BINARY_DIR}/cli_train_monitor.json
  "{\n  \"train_batch_size\": 8,\n  \"train_micro_batch_size_per_gpu\": 4,\n  \"wall_clock_breakdown\": true,\n"
  "  \"optimizer\": {\"type\": \"AdamW\", \"params\": {\"lr\": 0.002}},\n"
  "  \"scheduler\": {\"type\": \"WarmupLR\", \"params\": {\"warmup_num_steps\": 5, \"warmup_type\": \"linear\"}},\n"
  "  \"csv_monitor\": {\"enabled\": true, \"output_path\": \"${DSC_MON_TRAIN}\", \"job_name\": \"run\"},\n"
  "  \"tensorboard\": {\"enabled\": true, \"output_path\": \"${DSC_MON_TRAIN}\", \"job_name\": \"run\"}\n}\n")
if(DSC_MON_MAIN MATCHES "dsc_cmd_plot" AND DSC_MON_ENGINE MATCHES "dsc__engine_monitor_new")
  add_test(NAME cli_train_monitor
           COMMAND sh -c "rm -rf ${DSC_MON_TRAIN} && ${DSC_MON_DSC} train --config ${CMAKE_BINARY_DIR}/cli_train_monitor.json --data README.md --steps 12 --layers 1 --embd 32 --heads 2 --context 16 --eval-every 0 2>&1 | grep -c 'time (ms) | fwd: ' && wc -l < ${DSC_MON_TRAIN}/run/Train_Samples_train_loss.csv && head -3 ${DSC_MON_TRAIN}/run/Train_Samples_lr.csv && ls ${DSC_MON_TRAIN}/run && ${DSC_MON_DSC} plot ${DSC_MON_TRAIN}/run"
           WORKING_DIRECTORY ${PROJECT_SOURCE_DIR})
  # 12 boundary lines, 12 rows + header, lr at 8 and 16 samples, a tensorboard file, the plot
  set_tests_properties(cli_train_monitor PROPERTIES TIMEOUT 300 ENVIRONMENT "OMP_NUM_THREADS=1;OMP_WAIT_POLICY=passive;LC_ALL=C"
    PASS_REGULAR_EXPRESSION "^12\n13\nstep,lr\r\n8,[0-9.e-]+\r\n16,[0-9.e-]+\r\n.*Train_Samples_elapsed_time_ms_step.csv.*events.out.tfevents.*wrote .*plot.png")
else()
  add_test(NAME cli_train_monitor COMMAND sh -c "echo 'SKIP: the engine does not create its monitors yet (engine.c) or dsc plot is not registered'; exit 77")
  set_tests_properties(cli_train_monitor PROPERTIES SKIP_RETURN_CODE 77)
endif()
