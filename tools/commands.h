/* Subcommands of the dsc tool. Each returns the process exit status; only tools/ may exit(). */
#ifndef DSC_TOOLS_COMMANDS_H
#define DSC_TOOLS_COMMANDS_H

int dsc_cmd_train(int argc, char **argv);
int dsc_cmd_config(int argc, char **argv);
int dsc_cmd_estimate(int argc, char **argv);
int dsc_cmd_plot(int argc, char **argv);
int dsc_cmd_doctor(int argc, char **argv);
int dsc_cmd_zero_to_fp32(int argc, char **argv);
int dsc_cmd_sample(int argc, char **argv);
int dsc_cmd_launch(int argc, char **argv);

#endif
