include $(sort $(wildcard $(BR2_EXTERNAL_GARDEND_PATH)/package/*/*.mk))
